import Logging
import StoreKit

/// A fixed number of PostgreSQL connections, each owned by its own thread (a `SessionPool`): the same faults
/// absorbed as for MariaDB (a server that went away after the pool reached it, deadlocks and lock timeouts).
public final class PostgresPool: Sendable {
    public let uri: PostgresURI
    private let sessions: SessionPool<PostgresConnection>

    /// `lockTimeoutSeconds`: the sessions' `lock_timeout` (`--db-lock-wait-timeout`), after which a statement waiting for
    /// a lock fails with 55P03 and is run again; nil: the server's.
    public init(uri: PostgresURI, size: Int, faults: SessionPool<PostgresConnection>.Faults = .init(), lockTimeoutSeconds: Int? = nil,
                logger: Logger = Logger(label: "storage")) {
        self.uri = uri
        sessions = SessionPool(size: size, threadName: "pg", faults: faults, described: "\(uri)", logger: logger,
                               connect: {
                                   let connection = try PostgresConnection(uri: uri)
                                   if let lockTimeoutSeconds { try connection.execute("SET lock_timeout = '\(lockTimeoutSeconds)s'") }
                                   return connection
                               },
                               close: { _ in })
    }

    public var size: Int { sessions.size }
    public var reconnects: Int { sessions.reconnects }

    /// Runs `body` with a connection on its own thread.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await sessions.withConnection(body)
    }

    public func shutdown() { sessions.shutdown() }
}
