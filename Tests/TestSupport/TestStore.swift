import BinanceAPI
import PostgresStore
import MariaDBStore
import StoreKit

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

    /// The store's writer of any catalogue table, with `table` created from the catalogue (as `prepare` creates it).
    public func catalogueWriter(creating table: TableDefinition) async throws -> any CatalogueWriting {
        if let mariadb {
            try await mariadb.execute(MariaDBTables.createSQL(table))
            return MariaDBCatalogueWriter(pool: mariadb.pool)
        }
        try await postgres!.execute(PostgresTables.createSQL(table))
        return PostgresCatalogueWriter(pool: postgres!.pool)
    }

    /// The URL with its password, as `--database-url` takes it.
    public var urlText: String { mariadb?.uriText ?? postgres?.uriText ?? "" }

    /// The store's klines writer, as the pipeline sees it, with its tables created.
    public func klineWriter(creating tables: [KlineTable]) async throws -> any KlineStoring {
        if let mariadb {
            _ = try await SchemaMigrator(pool: mariadb.pool).migrate(tables)
            return KlineStore(pool: mariadb.pool)
        }
        guard let postgres else { throw TestSetupError("no store") }
        let store = PostgresKlineStore(pool: postgres.pool)
        try await store.create(tables)
        return store
    }

    /// The store's aggregate-trade writer, as the pipeline sees it, with `table` created from the catalogue.
    public func tradeWriter(creating table: TradeTable) async throws -> any TradeStoring {
        if let mariadb {
            try await mariadb.execute(MariaDBTables.createSQL(table.definition))
            return TradeStore(pool: mariadb.pool)
        }
        guard let postgres else { throw TestSetupError("no store") }
        try await postgres.execute(PostgresTables.createSQL(table.definition))
        return PostgresTradeStore(pool: postgres.pool)
    }

    /// Every stored kline of `symbol`, oldest first.
    public func klines(table: KlineTable, symbol: String) async throws -> [StoredKline] {
        let symbol = try Symbol(validating: symbol)
        if let mariadb { return try await KlineStore(pool: mariadb.pool).klines(table: table, symbol: symbol) }
        guard let postgres else { return [] }
        return try await PostgresKlineStore(pool: postgres.pool).klines(table: table, symbol: symbol)
    }

    /// How many tables the database has.
    public func tableCount() async throws -> Int {
        let sql = mariadb != nil ? "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
            : "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        return Int(try await query(sql).first?.first.flatMap { $0 } ?? "0") ?? 0
    }

    /// Rows in `table`, 0 when it does not exist.
    public func count(_ table: String) async throws -> Int {
        if let mariadb { return try await mariadb.count(table) }
        guard let postgres else { return 0 }
        guard try await postgres.query("SELECT to_regclass('\(table)') IS NOT NULL").first?.first == "t" else { return 0 }
        guard let text = try await postgres.query("SELECT count(*) FROM \"\(table)\"").first?.first ?? nil else { return 0 }
        return Int(text) ?? 0
    }

    /// Deletes the klines of `symbol` whose open times are within `[from, through]` (ms), as a hole punched by hand.
    public func deleteKlines(_ table: String, symbol: String, from: Int64, through: Int64) async throws {
        if let mariadb {
            try await mariadb.execute("DELETE FROM `\(table)` WHERE symbol = '\(symbol)' AND open_time BETWEEN FROM_UNIXTIME(\(from) * 0.001) AND FROM_UNIXTIME(\(through) * 0.001)")
        } else if let postgres {
            try await postgres.execute("DELETE FROM \"\(table)\" WHERE symbol = '\(symbol)' AND open_time BETWEEN 'epoch'::timestamptz + \(from) * interval '1 millisecond' "
                                       + "AND 'epoch'::timestamptz + \(through) * interval '1 millisecond'")
        }
    }

    /// `kline_gaps_confirmed` as (symbol, first missing open time, last missing open time), by symbol and time.
    public func confirmedGaps() async throws -> [[String]] {
        let rows: [[String?]]
        if let mariadb {
            rows = try await mariadb.query("SELECT symbol, CAST(UNIX_TIMESTAMP(gap_start) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(gap_end) * 1000 AS SIGNED) "
                                           + "FROM kline_gaps_confirmed ORDER BY symbol, gap_start")
        } else if let postgres {
            rows = try await postgres.query("SELECT symbol, (extract(epoch FROM gap_start) * 1000)::bigint, (extract(epoch FROM gap_end) * 1000)::bigint "
                                            + "FROM kline_gaps_confirmed ORDER BY symbol, gap_start")
        } else {
            rows = []
        }
        return rows.map { $0.map { $0 ?? "" } }
    }

    /// Every stored `futures_metrics` row of `symbol`, oldest first: the time in Unix ms, then the six values as the
    /// database prints them (nil for NULL).
    public func metrics(symbol: String) async throws -> [(Int64, [String?])] {
        let values = FuturesMetrics.valueColumns.joined(separator: ", ")
        let rows: [[String?]]
        if let mariadb {
            rows = try await mariadb.query("SELECT CAST(UNIX_TIMESTAMP(metric_time) * 1000 AS SIGNED), \(values) FROM futures_metrics "
                                           + "WHERE symbol = '\(symbol)' ORDER BY metric_time")
        } else if let postgres {
            let text = FuturesMetrics.valueColumns.map { "\($0)::text" }.joined(separator: ", ")
            rows = try await postgres.query("SELECT (extract(epoch FROM metric_time) * 1000)::bigint, \(text) FROM futures_metrics "
                                            + "WHERE symbol = '\(symbol)' ORDER BY metric_time")
        } else {
            rows = []
        }
        return rows.compactMap { r in r.first.flatMap { $0 }.flatMap { Int64($0) }.map { ($0, Array(r.dropFirst())) } }
    }

    /// Every stored funding rate of `symbol`, oldest first: (time, rate, mark price or nil).
    public func fundingRates(symbol: String, table: String = FundingTable.name) async throws -> [(Int64, String, String?)] {
        let symbol = try Symbol(validating: symbol)
        if let mariadb { return try await FundingStore(pool: mariadb.pool, table: table).all(symbol: symbol) }
        guard let postgres else { return [] }
        return try await PostgresFundingStore(pool: postgres.pool, table: table).all(symbol: symbol)
    }

    /// Stored aggregate trade ids and times of `symbol`, in id order.
    public func tradeIds(_ table: TradeTable, symbol: String) async throws -> [(Int64, Int64)] {
        let symbol = try Symbol(validating: symbol)
        if let mariadb { return try await TradeStore(pool: mariadb.pool).ids(table: table, symbol: symbol) }
        guard let postgres else { return [] }
        return try await PostgresTradeStore(pool: postgres.pool).ids(table: table, symbol: symbol)
    }

    /// One stored trade's price, quantity and buyer-maker flag (`1`/`0`), as the database prints them.
    public func trade(_ table: TradeTable, id: Int64) async throws -> [String?] {
        if let mariadb {
            return try await mariadb.query("SELECT price, quantity, is_buyer_maker FROM `\(table.name)` WHERE agg_trade_id = \(id)").first ?? []
        }
        guard let postgres else { return [] }
        return try await postgres.query("SELECT price::text, quantity::text, CASE WHEN is_buyer_maker THEN '1' ELSE '0' END FROM \"\(table.name)\" "
                                        + "WHERE agg_trade_id = \(id)").first ?? []
    }

    /// Rows of a query that both databases read alike (plain SQL, no dialect), as text.
    public func query(_ sql: String) async throws -> [[String?]] {
        if let mariadb { return try await mariadb.query(sql) }
        return try await postgres?.query(sql) ?? []
    }

    /// A statement both databases read alike.
    public func execute(_ sql: String) async throws {
        if let mariadb { try await mariadb.execute(sql) }
        try await postgres?.execute(sql)
    }

    /// A login of its own with `password`, allowed everything in this database; returns its URL (with `password`, or
    /// another for a wrong one, and optionally another port) and what removes the login.
    public func createLogin(_ name: String, password: String) async throws -> (url: @Sendable (String, Int?) -> String, remove: @Sendable () async -> Void) {
        if let mariadb {
            let uri = mariadb.uri
            try await mariadb.execute("CREATE USER '\(name)'@'127.0.0.1' IDENTIFIED BY '\(password)'")
            try await mariadb.execute("GRANT ALL ON `\(uri.database)`.* TO '\(name)'@'127.0.0.1'")
            return ({ pw, port in "mysql://\(name):\(pw)@127.0.0.1:\(port ?? Int(uri.port))/\(uri.database)" },
                    { try? await mariadb.execute("DROP USER '\(name)'@'127.0.0.1'") })
        }
        guard let postgres else { return ({ _, _ in "" }, {}) }
        let uri = postgres.uri
        try await postgres.execute("CREATE ROLE \(name) LOGIN PASSWORD '\(password)'; GRANT ALL ON SCHEMA public TO \(name)")
        return ({ pw, port in "postgresql://\(name):\(pw)@127.0.0.1:\(port ?? uri.port)/\(uri.database)" },
                { try? await postgres.execute("DROP OWNED BY \(name); DROP ROLE \(name)") })
    }

    /// Another session holding `table` against writes until `release`: MariaDB's `SELECT … FOR UPDATE` (its gap locks
    /// block inserts), PostgreSQL's `LOCK TABLE … IN EXCLUSIVE MODE` (reads go on, writes wait).
    public func holdWriteLock(on table: String) async throws -> HeldLock {
        if let mariadb {
            let pool = ConnectionPool(uri: mariadb.uri, size: 1)
            _ = try await pool.withConnection { db in
                try db.execute("START TRANSACTION")
                return try db.query("SELECT * FROM `\(table)` FOR UPDATE").count
            }
            return HeldLock(release: {
                _ = try await pool.withConnection { try $0.execute("COMMIT") }
                pool.shutdown()
            })
        }
        guard let postgres else { return HeldLock(release: {}) }
        let pool = PostgresPool(uri: postgres.uri, size: 1)
        try await pool.withConnection { db in
            try db.execute("BEGIN")
            try db.execute("LOCK TABLE \"\(table)\" IN EXCLUSIVE MODE")
        }
        return HeldLock(release: {
            _ = try await pool.withConnection { try $0.execute("COMMIT") }
            pool.shutdown()
        })
    }

    public func drop() async {
        await mariadb?.drop()
        await postgres?.drop()
    }
}

/// A lock another session holds, until `release` (its session's pool has one connection: the same one commits).
public struct HeldLock: Sendable {
    public let release: @Sendable () async throws -> Void
}
