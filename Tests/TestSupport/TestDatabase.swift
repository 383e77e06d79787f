import Foundation
import MariaDBStore
import StoreKit

/// A database of its own for one test, on the MariaDB that `scripts/mariadb.sh` started (`make test` does).
///
/// `TEST_MYSQL_URI` names an account that may create databases (default: the script's
/// `mysql://root:test@127.0.0.1:33306/mysql`).
public struct TestDatabase: Sendable {
    public let uri: DatabaseURI
    public let pool: ConnectionPool
    private let admin: ConnectionPool

    public static var adminURI: DatabaseURI {
        get throws {
            let text = ProcessInfo.processInfo.environment["TEST_MYSQL_URI"] ?? "mysql://root:test@127.0.0.1:33306/mysql"
            return try DatabaseURI(parsing: text)
        }
    }

    public static func make() async throws -> TestDatabase {
        let admin = ConnectionPool(uri: try adminURI, size: 1)
        let name = "bx_test_\(UInt32.random(in: 0...UInt32.max))"
        do {
            _ = try await admin.withConnection { try $0.execute("CREATE DATABASE `\(name)`") }
        } catch {
            admin.shutdown()
            throw TestSetupError("cannot create a test database on \(try adminURI): \(error). Start MariaDB with "
                                 + "`make test` (or scripts/mariadb.sh start .build-test/mariadb 33306) or set TEST_MYSQL_URI.")
        }
        let uri = try adminURI.with(database: name)
        return TestDatabase(uri: uri, pool: ConnectionPool(uri: uri, size: 2), admin: admin)
    }

    private init(uri: DatabaseURI, pool: ConnectionPool, admin: ConnectionPool) {
        self.uri = uri
        self.pool = pool
        self.admin = admin
    }

    /// A database that exists already (a dedicated server's): `drop` drops it with the same account.
    public init(existing uri: DatabaseURI) {
        self.uri = uri
        pool = ConnectionPool(uri: uri, size: 2)
        admin = ConnectionPool(uri: uri, size: 1)
    }

    /// The URI with its password, as `--mysql-uri` takes it.
    public var uriText: String { Self.text(of: uri) }

    /// `mysql://user:password@host:port/db`, password included (tests only).
    public static func text(of uri: DatabaseURI, password: String? = nil, database: String? = nil) -> String {
        "mysql://\(uri.user):\(password ?? uri.password)@\(uri.host):\(uri.port)/\(database ?? uri.database)"
    }

    /// Rows of a query, as text.
    public func query(_ sql: String) async throws -> [[String?]] {
        try await pool.withConnection { try $0.query(sql) }
    }

    public func execute(_ sql: String) async throws {
        _ = try await pool.withConnection { try $0.execute(sql) }
    }

    public func count(_ table: String) async throws -> Int {
        let exists = try await query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '\(table)'")
        guard exists.first?.first == "1" else { return 0 }
        return Int(try await query("SELECT COUNT(*) FROM `\(table)`")[0][0]!)!
    }

    public func drop() async {
        pool.shutdown()
        let name = uri.database
        _ = try? await admin.withConnection { try $0.execute("DROP DATABASE IF EXISTS `\(name)`") }
        admin.shutdown()
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
