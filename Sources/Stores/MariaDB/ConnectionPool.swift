import StoreKit
import BlockingThreads
import Foundation
import Logging

/// A fixed number of MariaDB connections, each owned by its own `BlockingThread` (a `SessionPool`).
///
/// Faults it absorbs (see `SessionPool`): the server going away (2006, 2013, or 2002/2003 while it restarts) after
/// the pool had reached it, and deadlocks (1213) or lock wait timeouts (1205). A server that was never reachable, or
/// wrong credentials, fail at once.
public final class ConnectionPool: Sendable {
    public struct Options: Sendable {
        public var size: Int
        public var reconnectWindowMilliseconds: Int64
        public var lockRetries: Int
        /// `innodb_lock_wait_timeout` for the pool's sessions (nil: the server's).
        public var lockWaitTimeoutSeconds: Int?

        public init(size: Int = 4, reconnectWindowMilliseconds: Int64 = 30_000, lockRetries: Int = 5, lockWaitTimeoutSeconds: Int? = nil) {
            self.size = size
            self.reconnectWindowMilliseconds = reconnectWindowMilliseconds
            self.lockRetries = lockRetries
            self.lockWaitTimeoutSeconds = lockWaitTimeoutSeconds
        }
    }

    public let uri: DatabaseURI
    public let options: Options
    private let sessions: SessionPool<MariaDBConnection>

    public convenience init(uri: DatabaseURI, size: Int, logger: Logger = Logger(label: "storage")) {
        self.init(uri: uri, options: Options(size: size), logger: logger)
    }

    public init(uri: DatabaseURI, options: Options, logger: Logger = Logger(label: "storage")) {
        self.uri = uri
        self.options = options
        let lockWaitTimeout = options.lockWaitTimeoutSeconds
        sessions = SessionPool(size: options.size, threadName: "db",
                               faults: .init(reconnectWindowMilliseconds: options.reconnectWindowMilliseconds, lockRetries: options.lockRetries),
                               described: "\(uri)", logger: logger,
                               connect: {
                                   let connection = try MariaDBConnection(uri: uri)
                                   if let lockWaitTimeout { try connection.execute("SET SESSION innodb_lock_wait_timeout = \(lockWaitTimeout)") }
                                   return connection
                               },
                               close: { $0.close() })
    }

    public var size: Int { sessions.size }

    /// Reconnections and statement retries so far (for tests and the summary).
    public var reconnects: Int { sessions.reconnects }
    public var lockRetriesDone: Int { sessions.lockRetriesDone }

    /// Runs `body` with a connection, absorbing the faults above.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (MariaDBConnection) throws -> T) async throws -> T {
        try await sessions.withConnection(body)
    }

    /// Closes every connection and ends their threads.
    public func shutdown() {
        sessions.shutdown()
    }
}
