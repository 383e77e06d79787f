import BinanceAPI
import Foundation
import PostgresStore
import MariaDBStore
import StoreKit

/// A database server of one test's own, of either store, for tests that stop or restart it mid-run (the shared test
/// servers must not be disturbed): MariaDB through `DedicatedMariaDB`, PostgreSQL through `scripts/postgres.sh`.
public final class DedicatedStore: @unchecked Sendable {
    public let kind: StoreKind
    private let mariadb: DedicatedMariaDB?
    private let postgresDirectory: String?
    private var postgresAdmin: PostgresURI?

    public init(_ kind: StoreKind) throws {
        self.kind = kind
        switch kind {
        case .mariadb:
            mariadb = try DedicatedMariaDB()
            postgresDirectory = nil
        case .postgresql:
            mariadb = nil
            // Under /tmp: the server runs as the `postgres` user, which must reach its data folder.
            let directory = "/tmp/bx-postgres-\(UUID().uuidString.prefix(8))"
            postgresDirectory = directory
            postgresAdmin = try Self.startPostgres(directory: directory)
        }
    }

    /// A database on the server, created if missing, as `--database-url` takes it (password included: tests only).
    public func database(_ name: String) async throws -> String {
        if let mariadb { return TestDatabase.text(of: try await mariadb.database(name)) }
        guard let admin = postgresAdmin else { return "" }
        let pool = PostgresPool(uri: admin, size: 1)
        defer { pool.shutdown() }
        let exists = try await pool.withConnection { try $0.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]) }
        if exists.isEmpty { _ = try await pool.withConnection { try $0.execute("CREATE DATABASE \(name)") } }
        return "postgresql://\(admin.user):\(admin.password)@\(admin.host):\(admin.port)/\(name)"
    }

    public func stop() throws {
        if let mariadb { try mariadb.stop() }
        if let postgresDirectory { _ = try Self.postgres(["stop", postgresDirectory]) }
    }

    /// Starts the server again, on the port it had.
    public func start() throws {
        if let mariadb { try mariadb.start() }
        if let postgresDirectory, let port = postgresAdmin?.port { _ = try Self.postgres(["start", postgresDirectory, "\(port)"]) }
    }

    public func destroy() {
        mariadb?.destroy()
        if let postgresDirectory {
            _ = try? Self.postgres(["stop", postgresDirectory])
            try? FileManager.default.removeItem(atPath: postgresDirectory)
        }
    }

    /// Every stored kline of `symbol` in the database `url` names, oldest first.
    public func klines(_ url: String, table: KlineTable, symbol: String) async throws -> [StoredKline] {
        let symbol = try Symbol(validating: symbol)
        if mariadb != nil {
            let pool = ConnectionPool(uri: try DatabaseURI(parsing: url), size: 1)
            defer { pool.shutdown() }
            return try await KlineStore(pool: pool).klines(table: table, symbol: symbol)
        }
        let pool = PostgresPool(uri: try PostgresURI(parsing: url), size: 1)
        defer { pool.shutdown() }
        return try await PostgresKlineStore(pool: pool).klines(table: table, symbol: symbol)
    }

    /// Rows in `table` of the database `url` names (0 while it does not exist).
    public func count(_ url: String, table: String) async throws -> Int {
        if mariadb != nil {
            let pool = ConnectionPool(uri: try DatabaseURI(parsing: url), size: 1)
            defer { pool.shutdown() }
            let rows = try await pool.withConnection {
                try $0.query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '\(table)'")
            }
            guard rows.first?.first == "1" else { return 0 }
            let text = try await pool.withConnection { try $0.query("SELECT COUNT(*) FROM `\(table)`") }.first?.first ?? nil
            return Int(text ?? "0") ?? 0
        }
        let pool = PostgresPool(uri: try PostgresURI(parsing: url), size: 1)
        defer { pool.shutdown() }
        guard try await pool.withConnection({ try $0.query("SELECT to_regclass('\(table)') IS NOT NULL") }).first?.first == "t" else { return 0 }
        let text = try await pool.withConnection { try $0.query("SELECT count(*) FROM \"\(table)\"") }.first?.first ?? nil
        return Int(text ?? "0") ?? 0
    }

    /// Starts a PostgreSQL of a test's own in `directory` on a random free port (several dedicated servers may start at
    /// once; counting up from the shared server's port, two could pick the same one). `extraArguments`: more server
    /// options (`-c ssl=on …`).
    public static func startPostgres(directory: String, extraArguments: String = "") throws -> PostgresURI {
        var failure: (any Error)?
        for _ in 0..<5 {
            do {
                return try PostgresURI(parsing: try postgres(["start", directory, "\(Int.random(in: 36_000..<44_000))"], extra: extraArguments))
            } catch {
                failure = error
            }
        }
        throw failure ?? TestSetupError("PostgreSQL did not start in \(directory)")
    }

    @discardableResult
    static func postgres(_ arguments: [String], extra: String = "") throws -> String {
        try Programs.script("postgres.sh", arguments, environment: extra.isEmpty ? [:] : ["POSTGRES_EXTRA_ARGS": extra])
    }
}
