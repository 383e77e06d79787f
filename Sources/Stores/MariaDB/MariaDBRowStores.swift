import Foundation
import StoreKit
import BinanceAPI
import Tracing

/// Funding rates: where each symbol stands, and idempotent batch upserts.
public struct FundingStore: Sendable {
    public let pool: ConnectionPool
    /// How the existing table takes the rows (see `FundingTableCheck`).
    public let check: FundingTableCheck
    /// `funding_rates`, or `coinm_funding_rates`.
    public let table: String
    public init(pool: ConnectionPool, check: FundingTableCheck = FundingTableCheck(), table: String = FundingTable.name) {
        self.pool = pool
        self.check = check
        self.table = table
    }

    public func lastFundingTime(symbol: Symbol) async throws -> Int64? {
        try await pool.newestTime("funding_time", table: table, symbol: symbol)
    }

    @discardableResult
    public func upsert(symbol: Symbol, rows: [FundingRate]) async throws -> Int {
        guard !rows.isEmpty else { return 0 }
        try check.verify(rows)
        let n = rows.count
        // A DATETIME without fractions gets the funding time to the second (floored, whatever the server would do).
        let times = check.timeToTheSecond ? rows.map { $0.fundingTime - (($0.fundingTime % 1000) + 1000) % 1000 } : rows.map(\.fundingTime)
        var columns: [BulkColumn] = [
            .string(Array(repeating: symbol.name, count: n)), .int64(times),
            .string(rows.map(\.fundingRate.text)), .string(rows.map { $0.markPrice?.text ?? "" }),
        ]
        var sql = FundingTable.upsertSQL(table: table)
        if let version = check.petrosaVersion, table == FundingTable.name {
            // petrosa's shape: `id` from the exact funding time in ms, `timestamp` = the funding time, its default of
            // 8 funding hours, upserted on `id`.
            sql = FundingTable.petrosaUpsertSQL
            columns = [.string(rows.map { "\(symbol.name)_\($0.fundingTime)" }), .int64(times),
                       .string(Array(repeating: version, count: n))] + columns
        }
        try await pool.batch(sql, columns: columns, rows: n, operation: "INSERT", collection: table)
        return rows.count
    }

    /// Every stored funding rate of a symbol, oldest first: (time, rate, mark price or nil).
    public func all(symbol: Symbol) async throws -> [(Int64, String, String?)] {
        let rows = try await pool.withConnection { db in
            try db.query("SELECT CAST(UNIX_TIMESTAMP(funding_time) * 1000 AS SIGNED), funding_rate, mark_price FROM `\(table)` "
                         + "WHERE symbol = \(try db.quote(symbol.name)) ORDER BY funding_time")
        }
        return rows.map { (Int64($0[0]!)!, $0[1]!, $0[2]) }
    }
}

/// `futures_metrics`: where each symbol stands, and batch upserts that keep a stored value a batch lacks.
public struct MetricsStore: MetricsStoring {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    public func lastMetricTime(symbol: Symbol) async throws -> Int64? {
        try await pool.newestTime("metric_time", table: MetricsTable.name, symbol: symbol)
    }

    public func write(symbol: Symbol, rows: [FuturesMetric]) async throws -> Int {
        guard !rows.isEmpty else { return 0 }
        let n = rows.count
        let columns: [BulkColumn] = [.string(Array(repeating: symbol.name, count: n)), .int64(rows.map(\.time))]
            + (0..<FuturesMetrics.valueColumns.count).map { i in .string(rows.map { $0.values[i]?.text ?? "" }) }
        try await pool.batch(MetricsTable.upsertSQL, columns: columns, rows: n, operation: "INSERT", collection: MetricsTable.name)
        return n
    }
}

/// Aggregate trades: the last stored id of each symbol, and idempotent batch upserts.
///
/// A batch goes through the server's own bulk path, `LOAD DATA LOCAL INFILE`, fed from memory by the connection's
/// handler (never a file), in a transaction that any warning rolls back: millions of trades a month go in at the speed
/// of `LOAD DATA`. That holds while the series (table and symbol) has met no stored trade: ids only grow, and a
/// backfill asks each id once. A batch that meets a stored id (warning 1062) is rolled back and, with the rest of the
/// series, goes through the array-bound `INSERT … ON DUPLICATE KEY UPDATE`, which overwrites what is stored (never
/// `REPLACE`: it would need the DELETE privilege and delete before inserting). A server that refuses LOCAL
/// (`local_infile=OFF`) gets the INSERT path from then on.
public struct TradeStore: Sendable {
    public let pool: ConnectionPool
    private let localRefused = LocalInfileRefusal()
    /// Series that met a stored trade: INSERT only.
    private let overlapping = SeriesSet()
    public init(pool: ConnectionPool) { self.pool = pool }

    public func lastTradeId(table: TradeTable, symbol: Symbol) async throws -> Int64? {
        try await pool.scalarInt64("SELECT MAX(`agg_trade_id`) FROM `\(table.name)` WHERE `symbol` = ", symbol.name, collection: table.name)
    }

    public func lastTradeTime(table: TradeTable, symbol: Symbol) async throws -> Int64? {
        // Times never go backwards as ids grow (Binance, "Compressed/Aggregate Trades List"): the newest time is the last trade's.
        try await pool.newestTime("trade_time", table: table.name, symbol: symbol)
    }

    @discardableResult
    public func upsert(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int {
        guard !trades.isEmpty else { return 0 }
        if !localRefused.isSet && !overlapping.contains(table.name, symbol.name) {
            let data = TradeText.lines(symbol: symbol, trades: trades, time: .datetime, yes: 0x31, no: 0x30)
            let sql = "LOAD DATA LOCAL INFILE 'batch' INTO TABLE `\(table.name)` CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' "
                + "LINES TERMINATED BY '\\n' (`symbol`, `agg_trade_id`, `price`, `\(table.quantityColumn)`, `first_trade_id`, `last_trade_id`, "
                + "`trade_time`, `is_buyer_maker`)"
            do {
                try await databaseSpan(pool, "LOAD DATA", table.name, batchSize: trades.count) {
                    _ = try await pool.withConnection { try $0.loadLocal(sql, data: data) }
                }
                return trades.count
            } catch let error as DatabaseError where [1148, 2068, 3948, 4166].contains(error.code) {
                // LOCAL is off on the server (or the client library's build): the INSERT path, for the rest of the run.
                localRefused.set()
            } catch let error as DatabaseError where error.code == 1062 {
                // Rows of this series are stored already (a backfill over them, another writer): upserts from now on.
                overlapping.insert(table.name, symbol.name)
            }
        }

        let columns: [BulkColumn] = [
            .string(Array(repeating: symbol.name, count: trades.count)), .int64(trades.map(\.id)),
            .string(trades.map(\.price.text)), .string(trades.map(\.quantity.text)), .int64(trades.map(\.firstTradeId)),
            .int64(trades.map(\.lastTradeId)), .int64(trades.map(\.time)), .int64(trades.map { $0.isBuyerMaker ? 1 : 0 }),
        ]
        try await pool.batch(table.upsertSQL, columns: columns, rows: trades.count, operation: "INSERT", collection: table.name)
        return trades.count
    }

    /// Stored ids and times of a symbol, in id order (for checks).
    public func ids(table: TradeTable, symbol: Symbol) async throws -> [(Int64, Int64)] {
        let rows = try await pool.withConnection { db in
            try db.query("SELECT agg_trade_id, CAST(UNIX_TIMESTAMP(trade_time) * 1000 AS SIGNED) FROM `\(table.name)` "
                         + "WHERE symbol = \(try db.quote(symbol.name)) ORDER BY agg_trade_id")
        }
        return rows.map { (Int64($0[0]!)!, Int64($0[1]!)!) }
    }
}

/// Finds holes in stored klines with MariaDB's window functions (`LAG` over the primary key's order), so a table
/// of tens of millions of rows is scanned by the server in one pass and only the holes come back.
public struct GapStore: Sendable {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// Holes between stored candles, and (with `since`) before the first stored candle after `since`.
    public func holes(table: any GapTable, symbols: [Symbol]?, since: Int64?) async throws -> [KlineHole] {
        let interval = table.interval
        let time = table.timeColumn
        let step = interval.fixedMilliseconds.map { "INTERVAL \($0 * 1000) MICROSECOND" } ?? "INTERVAL 1 MONTH"
        let rows = try await databaseSpan(pool, "SELECT", table.name) {
            try await pool.withConnection { db in
                var filter = "1=1"
                if let symbols { filter += " AND `symbol` IN (" + (try symbols.map { try db.quote($0.name) }).joined(separator: ",") + ")" }
                if let since { filter += " AND `\(time)` >= FROM_UNIXTIME(\(since) * 0.001)" }
                var rows = try db.query("""
                    SELECT `symbol`, CAST(UNIX_TIMESTAMP(`prev_time`) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(`\(time)`) * 1000 AS SIGNED)
                    FROM (SELECT `symbol`, `\(time)`, LAG(`\(time)`) OVER (PARTITION BY `symbol` ORDER BY `\(time)`) AS `prev_time`
                          FROM `\(table.name)` WHERE \(filter)) AS w
                    WHERE `prev_time` IS NOT NULL AND `\(time)` > `prev_time` + \(step)
                    ORDER BY `symbol`, `\(time)`
                    """)
                if let since {
                    // Before the first stored candle: NULL marks "from `since`".
                    rows += try db.query("""
                        SELECT `symbol`, NULL, CAST(UNIX_TIMESTAMP(MIN(`\(time)`)) * 1000 AS SIGNED) FROM `\(table.name)`
                        WHERE \(filter) GROUP BY `symbol`
                        HAVING MIN(`\(time)`) > FROM_UNIXTIME(\(interval.firstOpenTime(atOrAfter: since)) * 0.001)
                        """)
                }
                return rows
            }
        }
        return KlineHole.holes(rows: rows, interval: interval, since: since)
    }

    /// Holes already confirmed empty on Binance's side.
    public func confirmed(table: any GapTable) async throws -> Set<KlineHole> {
        let rows = try await pool.withConnection { db in
            try db.query("""
                SELECT `symbol`, CAST(UNIX_TIMESTAMP(`gap_start`) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(`gap_end`) * 1000 AS SIGNED)
                FROM `\(ConfirmedGapTable.name)` WHERE `table_name` = \(try db.quote(table.name))
                """)
        }
        return Set(rows.compactMap { r in
            guard let s = r[0], let f = r[1].flatMap({ Int64($0) }), let t = r[2].flatMap({ Int64($0) }) else { return nil }
            return KlineHole(symbol: s, from: f, to: t, missing: table.interval.count(from: f, to: t))
        })
    }

    public func recordConfirmed(table: any GapTable, holes: [KlineHole]) async throws {
        guard !holes.isEmpty else { return }
        let columns: [BulkColumn] = [
            .string(Array(repeating: table.name, count: holes.count)), .string(holes.map(\.symbol)),
            .int64(holes.map(\.from)), .int64(holes.map(\.to)),
        ]
        try await pool.batch("INSERT IGNORE INTO `\(ConfirmedGapTable.name)` (`table_name`, `symbol`, `gap_start`, `gap_end`) "
                             + "VALUES (?, ?, FROM_UNIXTIME(? * 0.001), FROM_UNIXTIME(? * 0.001))",
                             columns: columns, rows: holes.count, operation: "INSERT", collection: ConfirmedGapTable.name)
    }

    /// Forgets confirmations (for `--recheck`).
    public func forget(table: any GapTable, symbols: [Symbol]?) async throws {
        _ = try await pool.withConnection { db in
            var sql = "DELETE FROM `\(ConfirmedGapTable.name)` WHERE `table_name` = \(try db.quote(table.name))"
            if let symbols { sql += " AND `symbol` IN (" + (try symbols.map { try db.quote($0.name) }).joined(separator: ",") + ")" }
            return try db.execute(sql)
        }
    }
}

extension ConnectionPool {
    /// `SELECT` on `collection` returning one integer, with one string value appended through the library's escaping.
    func scalarInt64(_ sqlPrefix: String, _ value: String, collection: String) async throws -> Int64? {
        let rows = try await databaseSpan(self, "SELECT", collection) {
            try await self.withConnection { db in try db.query(sqlPrefix + (try db.quote(value))) }
        }
        guard let text = rows.first?.first ?? nil else { return nil }
        return Int64(text)
    }

    /// The newest value of a time column for `symbol`, in Unix ms, or nil when nothing is stored (one index dive on a
    /// key that starts with (symbol, time)). PostgreSQL's twin is `PostgresConnection.newestTime`.
    func newestTime(_ column: String, table: String, symbol: Symbol) async throws -> Int64? {
        try await scalarInt64("SELECT CAST(UNIX_TIMESTAMP(MAX(`\(column)`)) * 1000 AS SIGNED) FROM `\(table)` WHERE `symbol` = ", symbol.name,
                              collection: table)
    }

    /// One array-bound statement for a whole batch (atomic), traced as a database CLIENT span.
    func batch(_ sql: String, columns: [BulkColumn], rows: Int, operation: String, collection: String) async throws {
        try await databaseSpan(self, operation, collection, batchSize: rows) {
            _ = try await self.withConnection { try $0.executeBatch(sql, columns: columns, rows: rows) }
        }
    }
}

/// A CLIENT span for one statement on MariaDB.
func databaseSpan<T>(_ pool: ConnectionPool, _ operation: String, _ collection: String, batchSize: Int? = nil,
                     _ body: () async throws -> T) async throws -> T {
    try await databaseSpan(system: "mariadb", namespace: pool.uri.database, host: pool.uri.host, port: Int(pool.uri.port),
                           operation, collection, batchSize: batchSize, body)
}

// The pipeline's view of these stores.
extension KlineStore: KlineStoring {
    public func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int {
        try await upsert(table: table, symbol: symbol, klines: klines)
        return klines.count
    }

    public func write(table: KlineTable, groups: [KlineGroup]) async throws -> Int {
        try await upsert(table: table, groups: groups)
        return groups.reduce(0) { $0 + $1.klines.count }
    }

    public func recordOutages(table: KlineTable, holes: [KlineHole]) async throws {
        try await GapStore(pool: pool).recordConfirmed(table: table, holes: holes)
    }
}

extension FundingStore: FundingStoring {
    public func write(symbol: Symbol, rows: [FundingRate]) async throws -> Int { try await upsert(symbol: symbol, rows: rows) }
    public func table(for market: Market) -> any FundingStoring {
        let name = FundingTable.name(for: market)
        return name == table ? self : FundingStore(pool: pool, table: name)
    }
}

extension TradeStore: TradeStoring {
    public func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int {
        try await upsert(table: table, symbol: symbol, trades: trades)
    }
}

extension GapStore: GapStoring {}

/// Set once the server refused `LOAD DATA LOCAL`: shared by the copies of a store.
final class LocalInfileRefusal: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
