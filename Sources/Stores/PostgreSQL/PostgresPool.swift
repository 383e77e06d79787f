import Logging
import Storage

/// A fixed number of PostgreSQL connections, each owned by its own thread (a `SessionPool`): the same faults
/// absorbed as for MariaDB (a server that went away after the pool reached it, deadlocks and lock timeouts).
public final class PostgresPool: Sendable {
    public let uri: PostgresURI
    private let sessions: SessionPool<PostgresConnection>

    public init(uri: PostgresURI, size: Int, faults: SessionPool<PostgresConnection>.Faults = .init(), logger: Logger = Logger(label: "storage")) {
        self.uri = uri
        sessions = SessionPool(size: size, threadName: "pg", faults: faults, described: "\(uri)", logger: logger,
                               connect: { try PostgresConnection(uri: uri) }, close: { _ in })
    }

    public var size: Int { sessions.size }
    public var reconnects: Int { sessions.reconnects }

    /// Runs `body` with a connection on its own thread.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await sessions.withConnection(body)
    }

    public func shutdown() { sessions.shutdown() }
}
