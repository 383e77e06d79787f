import StoreKit
import BinanceAPI
import Tracing

/// Reads and writes klines. Knows SQL and MariaDB, nothing of HTTP.
public struct KlineStore: Sendable {
    public let pool: ConnectionPool
    /// Existing tables whose shape differs from the project's in ways the rows must respect (see `KlineTableCheck`).
    public let checks: [String: KlineTableCheck]

    public init(pool: ConnectionPool, checks: [String: KlineTableCheck] = [:]) {
        self.pool = pool
        self.checks = checks
    }

    /// Open time (Unix ms) of the newest stored candle of `symbol`, or nil when none is stored.
    /// Served by the primary key (symbol, open_time): one index dive, whatever the table's size.
    public func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64? {
        try await pool.newestTime("open_time", table: table.name, symbol: symbol)
    }

    /// Writes `klines` of `symbol` as one atomic upsert statement. Returns the affected row count.
    @discardableResult
    public func upsert(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> UInt64 {
        try await upsert(table: table, groups: [KlineGroup(symbol: symbol, klines: klines)])
    }

    /// Writes the candles of several symbols as one atomic upsert statement (rows carry their symbol). Returns the
    /// affected row count.
    @discardableResult
    public func upsert(table: KlineTable, groups: [KlineGroup]) async throws -> UInt64 {
        let groups = groups.filter { !$0.klines.isEmpty }
        guard !groups.isEmpty else { return 0 }
        let check = checks[table.name]
        var statement = table.upsertSQL
        var parts: [[BulkColumn]] = []
        for group in groups {
            let (symbol, klines) = (group.symbol, group.klines)
            try check?.verify(klines, table: table.name)
            var bound = Self.columns(table: table, symbol: symbol, klines: klines, closeTimeToTheSecond: check?.closeTimeToTheSecond == true)
            if let petrosa = check?.petrosaRows {
                statement = table.petrosaUpsertSQL
                let n = klines.count
                bound = [
                    .string(klines.map { "\(symbol.name)_\($0.openTime)" }), .int64(klines.map(\.openTime)),
                    .string(Array(repeating: table.interval.rawValue, count: n)),
                    .string(Array(repeating: petrosa.extractorVersion, count: n)), .string(Array(repeating: table.petrosaSource, count: n)),
                ] + bound
            }
            parts.append(bound)
        }
        let (sql, columns) = (statement, BulkColumn.concatenated(parts))
        let n = groups.reduce(0) { $0 + $1.klines.count }
        do {
            return try await databaseSpan(pool, "INSERT", table.name, batchSize: n) {
                try await pool.withConnection { try $0.executeBatch(sql, columns: columns, rows: n) }
            }
        } catch let error as DatabaseError {
            let whose = groups.count == 1 ? "\(groups[0].symbol)" : "\(groups.count) symbols"
            throw DatabaseError(code: error.code, message: error.message,
                                context: "writing \(n) klines of \(whose) to \(table.name)")
        }
    }

    /// `closeTimeToTheSecond`: for a DATETIME without fractions, the close time floored to its second (what petrosa
    /// stores there; MariaDB would truncate `…:59.999` the same way, MySQL would round it into the next candle).
    /// A price series' table takes the times, open, high, low, close and the count (carried in `numberOfTrades`).
    static func columns(table: KlineTable, symbol: Symbol, klines: [Kline], closeTimeToTheSecond: Bool = false) -> [BulkColumn] {
        let head: [BulkColumn] = [
            .string(Array(repeating: symbol.name, count: klines.count)),
            .int64(klines.map(\.openTime)),
            .int64(closeTimeToTheSecond ? klines.map { $0.closeTime - (($0.closeTime % 1000) + 1000) % 1000 } : klines.map(\.closeTime)),
            .string(klines.map(\.open.text)),
            .string(klines.map(\.high.text)),
            .string(klines.map(\.low.text)),
            .string(klines.map(\.close.text)),
        ]
        guard table.isTrade else { return head + [.int64(klines.map(\.numberOfTrades))] }
        return head + [
            .string(klines.map(\.volume.text)),
            .string(klines.map(\.quoteAssetVolume.text)),
            .int64(klines.map(\.numberOfTrades)),
            .string(klines.map(\.takerBuyBaseAssetVolume.text)),
            .string(klines.map(\.takerBuyQuoteAssetVolume.text)),
        ]
    }

    /// Every stored kline of `symbol`, oldest first, with decimals as MariaDB prints them (for tests and checks). A
    /// price series' candle reads as it is carried (`Kline(price:)`): its count in the trade count, volumes zero.
    public func klines(table: KlineTable, symbol: Symbol) async throws -> [StoredKline] {
        // Columns 8 to 12 of the table, in the order a kline carries them.
        let values = table.isTrade ? table.columns.suffix(5).joined(separator: ", ") : "'0', '0', basic_data_count, '0', '0'"
        let rows = try await pool.withConnection { db in
            try db.query("""
                SELECT CAST(UNIX_TIMESTAMP(open_time) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(close_time) * 1000 AS SIGNED),
                open_price, high_price, low_price, close_price, \(values)
                FROM `\(table.name)` WHERE symbol = \(try db.quote(symbol.name)) ORDER BY open_time
                """)
        }
        return rows.map { r in
            StoredKline(openTime: Int64(r[0]!)!, closeTime: Int64(r[1]!)!, open: r[2]!, high: r[3]!, low: r[4]!,
                        close: r[5]!, volume: r[6]!, quoteAssetVolume: r[7]!, numberOfTrades: Int64(r[8]!)!,
                        takerBuyBaseAssetVolume: r[9]!, takerBuyQuoteAssetVolume: r[10]!)
        }
    }
}

