import Foundation
import PostgresStore

/// A PostgreSQL database of its own for one test, on the server that `scripts/postgres.sh` started (`make test`
/// does).
///
/// `TEST_POSTGRES_URI` names a role that may create databases (default: the script's
/// `postgresql://postgres:test@127.0.0.1:35432/postgres`).
public struct TestPostgres: Sendable {
    public let uri: PostgresURI
    public let pool: PostgresPool
    private let admin: PostgresPool

    public static var adminURI: PostgresURI {
        get throws {
            try PostgresURI(parsing: ProcessInfo.processInfo.environment["TEST_POSTGRES_URI"] ?? "postgresql://postgres:test@127.0.0.1:35432/postgres")
        }
    }

    public static func make() async throws -> TestPostgres {
        let adminURI = try adminURI
        let admin = PostgresPool(uri: adminURI, size: 1)
        let name = "bx_test_\(UInt32.random(in: 0...UInt32.max))"
        do {
            _ = try await admin.withConnection { try $0.execute("CREATE DATABASE \(name)") }
        } catch {
            admin.shutdown()
            throw TestSetupError("cannot create a test database on \(adminURI): \(error). Start PostgreSQL with `make test` "
                                 + "(or scripts/postgres.sh start .build-test/postgres 35432) or set TEST_POSTGRES_URI.")
        }
        var uri = adminURI
        uri.database = name
        return TestPostgres(uri: uri, pool: PostgresPool(uri: uri, size: 2), admin: admin)
    }

    /// The URL with its password, as `--database-url` takes it.
    public var uriText: String { "postgresql://\(uri.user):\(uri.password)@\(uri.host):\(uri.port)/\(uri.database)" }

    /// Rows of a query, as text.
    public func query(_ sql: String) async throws -> [[String?]] {
        try await pool.withConnection { try $0.query(sql) }
    }

    /// Runs statements (several, separated by `;`, as a script).
    public func execute(_ sql: String) async throws {
        _ = try await pool.withConnection { try $0.execute(sql) }
    }

    public func drop() async {
        pool.shutdown()
        let name = uri.database
        _ = try? await admin.withConnection { try $0.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        admin.shutdown()
    }
}

extension PostgresConnection {
    /// The notifications that arrive for this session's channels until there are `count` (bounded: a second or so), and
    /// any that came with them. Notifications travel on the listener's own connection, so it is read until then.
    public func notifications(awaiting count: Int) async throws -> [Notification] {
        var heard: [Notification] = []
        for _ in 0..<200 where heard.count < count {
            heard += notifications()
            if heard.count < count { try await Task.sleep(nanoseconds: 5_000_000) }
        }
        return heard + notifications()
    }
}
