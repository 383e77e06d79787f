import BinanceAPI
import PostgresStore
import Storage

/// The stores tests run against: what every store must do is tested once per store (`make test` starts both).
public enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case mariadb, postgresql
    public var description: String { rawValue }
}

/// A database of its own for one test, on either store, read back the same way.
public struct TestStore: Sendable {
    public let kind: StoreKind
    private let mariadb: TestDatabase?
    private let postgres: TestPostgres?

    public init(_ db: TestDatabase) {
        kind = .mariadb
        mariadb = db
        postgres = nil
    }

    public static func make(_ kind: StoreKind) async throws -> TestStore {
        switch kind {
        case .mariadb: TestStore(try await TestDatabase.make())
        case .postgresql: TestStore(postgres: try await TestPostgres.make())
        }
    }

    private init(postgres: TestPostgres) {
        kind = .postgresql
        mariadb = nil
        self.postgres = postgres
    }

    /// The URL with its password, as `--database-url` takes it.
    public var urlText: String { mariadb?.uriText ?? postgres?.uriText ?? "" }

    /// Every stored kline of `symbol`, oldest first.
    public func klines(table: KlineTable, symbol: String) async throws -> [StoredKline] {
        let symbol = try Symbol(validating: symbol)
        if let mariadb { return try await KlineStore(pool: mariadb.pool).klines(table: table, symbol: symbol) }
        guard let postgres else { return [] }
        return try await PostgresKlineStore(pool: postgres.pool).klines(table: table, symbol: symbol)
    }

    /// Rows in `table`, 0 when it does not exist.
    public func count(_ table: String) async throws -> Int {
        if let mariadb { return try await mariadb.count(table) }
        guard let postgres else { return 0 }
        guard try await postgres.query("SELECT to_regclass('\(table)') IS NOT NULL").first?.first == "t" else { return 0 }
        guard let text = try await postgres.query("SELECT count(*) FROM \"\(table)\"").first?.first ?? nil else { return 0 }
        return Int(text) ?? 0
    }

    public func drop() async {
        await mariadb?.drop()
        await postgres?.drop()
    }
}
