import BlockingThreads
import Logging

/// A fixed number of MariaDB connections, each owned by its own `BlockingThread`.
///
/// `withConnection` hands the body one connection on that connection's thread, so no two threads ever use a
/// connection at once and libmariadb's blocking calls stay off Swift's cooperative pool. Connections open lazily
/// and reopen after the server went away (2006, 2013): the body then runs again on the fresh connection, which is
/// safe because everything the project writes is an idempotent upsert.
public final class ConnectionPool: Sendable {
    public let uri: DatabaseURI
    private let pool: ResourcePool<PooledConnection>
    private let logger: Logger

    public init(uri: DatabaseURI, size: Int, logger: Logger = Logger(label: "storage")) {
        self.uri = uri
        self.logger = logger
        pool = ResourcePool((0..<max(1, size)).map { PooledConnection(uri: uri, index: $0) })
    }

    public var size: Int { pool.all.count }

    /// Runs `body` with a connection, reconnecting once if the connection turns out to be gone.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (MariaDBConnection) throws -> T) async throws -> T {
        let pooled = try await pool.acquire()
        defer { pool.release(pooled) }
        do {
            return try await pooled.thread.run { try body(try pooled.open()) }
        } catch let error as DatabaseError where error.isConnectionLost {
            logger.warning("database connection lost; reconnecting", metadata: ["error": "\(error)"])
            return try await pooled.thread.run {
                pooled.reset()
                return try body(try pooled.open())
            }
        }
    }

    /// Closes every connection and ends their threads.
    public func shutdown() {
        for pooled in pool.all { pooled.close() }
    }
}

/// A connection slot: the thread, and the connection it owns once opened.
final class PooledConnection: @unchecked Sendable {
    let thread: BlockingThread
    private let uri: DatabaseURI
    private var connection: MariaDBConnection?

    init(uri: DatabaseURI, index: Int) {
        self.uri = uri
        thread = BlockingThread(name: "db-\(index)")
    }

    /// Runs on `thread` only.
    func open() throws -> MariaDBConnection {
        if let connection { return connection }
        let fresh = try MariaDBConnection(uri: uri)
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
