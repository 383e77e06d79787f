import BlockingThreads
import Foundation
import Logging

/// A fixed number of MariaDB connections, each owned by its own `BlockingThread`.
///
/// `withConnection` hands the body one connection on that connection's thread, so no two threads ever use a
/// connection at once and libmariadb's blocking calls stay off Swift's cooperative pool.
///
/// Faults it absorbs, because everything the project writes is an idempotent upsert of a whole batch in one
/// statement (so running a statement again never duplicates or half-writes anything):
/// - the server went away (2006, 2013, or 2002/2003 while it restarts) after the pool had reached it: reconnect
///   with backoff for up to `reconnectWindow`, then run the body again on the fresh connection;
/// - a deadlock (1213) or lock wait timeout (1205): run the body again, up to `lockRetries` times.
/// A server that was never reachable, or wrong credentials, fail at once.
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
    private let pool: ResourcePool<PooledConnection>
    private let logger: Logger
    private let state = PoolState()

    public convenience init(uri: DatabaseURI, size: Int, logger: Logger = Logger(label: "storage")) {
        self.init(uri: uri, options: Options(size: size), logger: logger)
    }

    public init(uri: DatabaseURI, options: Options, logger: Logger = Logger(label: "storage")) {
        self.uri = uri
        self.options = options
        self.logger = logger
        pool = ResourcePool((0..<max(1, options.size)).map { PooledConnection(uri: uri, index: $0, lockWaitTimeout: options.lockWaitTimeoutSeconds) })
    }

    public var size: Int { pool.all.count }

    /// Reconnections and statement retries so far (for tests and the summary).
    public var reconnects: Int { state.reconnects }
    public var lockRetriesDone: Int { state.lockRetries }

    /// Runs `body` with a connection, absorbing the faults above.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (MariaDBConnection) throws -> T) async throws -> T {
        let pooled = try await pool.acquire()
        defer { pool.release(pooled) }
        var lockAttempts = 0
        var lostSince: Date?
        var logged = false
        var backoff: UInt64 = 100_000_000
        while true {
            do {
                let value = try await pooled.thread.run { try body(try pooled.open()) }
                state.markReached()
                return value
            } catch let error as DatabaseError where error.isConnectionLost && state.everReached {
                let since = lostSince ?? Date()
                lostSince = since
                guard Date().timeIntervalSince(since) * 1000 < Double(options.reconnectWindowMilliseconds) else { throw error }
                if !logged {
                    logged = true
                    logger.warning("database connection lost; reconnecting", metadata: ["error": "\(error)", "database": "\(uri)"])
                }
                state.countReconnect()
                _ = try? await pooled.thread.run { pooled.reset() }
                try await Task.sleep(nanoseconds: backoff)
                backoff = min(backoff * 2, 2_000_000_000)
            } catch let error as DatabaseError where error.isTransientLock && lockAttempts < options.lockRetries {
                lockAttempts += 1
                state.countLockRetry()
                logger.warning("database lock conflict; running the statement again", metadata: [
                    "error": "\(error)", "attempt": "\(lockAttempts)",
                ])
                try await Task.sleep(nanoseconds: UInt64(lockAttempts) * 100_000_000)
            }
        }
    }

    /// Closes every connection and ends their threads.
    public func shutdown() {
        for pooled in pool.all { pooled.close() }
    }
}

/// Counters shared by the pool's tasks.
final class PoolState: @unchecked Sendable {
    private let lock = NSLock()
    private var reached = false
    private var reconnectCount = 0
    private var lockRetryCount = 0

    var everReached: Bool { lock.withLock { reached } }
    var reconnects: Int { lock.withLock { reconnectCount } }
    var lockRetries: Int { lock.withLock { lockRetryCount } }
    func markReached() { lock.withLock { reached = true } }
    func countReconnect() { lock.withLock { reconnectCount += 1 } }
    func countLockRetry() { lock.withLock { lockRetryCount += 1 } }
}

/// A connection slot: the thread, and the connection it owns once opened.
final class PooledConnection: @unchecked Sendable {
    let thread: BlockingThread
    private let uri: DatabaseURI
    private let lockWaitTimeout: Int?
    private var connection: MariaDBConnection?

    init(uri: DatabaseURI, index: Int, lockWaitTimeout: Int?) {
        self.uri = uri
        self.lockWaitTimeout = lockWaitTimeout
        thread = BlockingThread(name: "db-\(index)")
    }

    /// Runs on `thread` only.
    func open() throws -> MariaDBConnection {
        if let connection { return connection }
        let fresh = try MariaDBConnection(uri: uri)
        if let lockWaitTimeout { try fresh.execute("SET SESSION innodb_lock_wait_timeout = \(lockWaitTimeout)") }
        connection = fresh
        return fresh
    }

    /// Runs on `thread` only.
    func reset() {
        connection?.close()
        connection = nil
    }

    func close() {
        thread.enqueue { [self] in reset() }
        thread.shutdown()
    }
}
