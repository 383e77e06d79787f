import BinanceAPI

/// What one table holds of one symbol: its span, its rows, the rows that span should have, and where it falls short.
/// The answer to "is my data complete?" (`binance-extractor coverage`).
public struct SeriesCoverage: Sendable, Equatable {
    public var table: String
    public var symbol: String
    /// First and last stored time (a kline's open time, a trade's or a funding rate's time), Unix ms.
    public var first: Int64
    public var last: Int64
    public var rows: Int64
    /// Rows the span `[first, last]` should hold: candles of the interval, or aggregate trade ids (they follow each
    /// other); nil where Binance keeps no fixed cadence (funding intervals differ by symbol and change).
    public var expected: Int64?
    /// Stretches missing inside the span (the `gaps` window query), confirmed outages included.
    public var holes: Int?
    /// Of those, holes Binance itself has no data for (`kline_gaps_confirmed`), and the candles they hold.
    public var confirmedOutages = 0
    public var confirmedMissing: Int64 = 0
    /// Closed candles after the last stored one, at the time of the report (nil: not a kline table).
    public var behind: Int64?

    public init(table: String, symbol: String, first: Int64, last: Int64, rows: Int64, expected: Int64? = nil, holes: Int? = nil) {
        self.table = table
        self.symbol = symbol
        self.first = first
        self.last = last
        self.rows = rows
        self.expected = expected
        self.holes = holes
    }

    /// Rows the span lacks (nil where `expected` is unknown).
    public var missing: Int64? { expected.map { max(0, $0 - rows) } }

    /// Nothing missing that Binance has (holes confirmed as Binance's own outages do not count).
    public var complete: Bool? { missing.map { $0 - confirmedMissing <= 0 } }
}

/// Reads coverage with aggregate queries the server answers from the primary keys: one `GROUP BY symbol` per table
/// for span and rows, and for holes the same window query as the gap filler (`GapStore`).
public struct CoverageStore: Sendable {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// Per symbol (all stored, or only `symbols`): MIN, MAX and COUNT of `timeColumn` (and of `idColumn`, if given).
    private func spans(table: String, timeColumn: String, idColumn: String? = nil, symbols: [Symbol]?) async throws -> [[String?]] {
        let ids = idColumn.map { ", MIN(`\($0)`), MAX(`\($0)`)" } ?? ""
        return try await databaseSpan(pool, "SELECT", table) {
            try await pool.withConnection { db in
                let filter = try symbols.map { "WHERE `symbol` IN (" + (try $0.map { try db.quote($0.name) }).joined(separator: ",") + ")" } ?? ""
                return try db.query("""
                    SELECT `symbol`, CAST(UNIX_TIMESTAMP(MIN(`\(timeColumn)`)) * 1000 AS SIGNED),
                           CAST(UNIX_TIMESTAMP(MAX(`\(timeColumn)`)) * 1000 AS SIGNED), COUNT(*)\(ids)
                    FROM `\(table)` \(filter) GROUP BY `symbol` ORDER BY `symbol`
                    """)
            }
        }
    }

    /// A kline table: candles expected between the first and last stored one, holes found by the gap filler's
    /// query, confirmed outages, and how many closed candles the table is behind `now`.
    public func klines(table: KlineTable, symbols: [Symbol]?, confirmed: Set<KlineHole>, now: Int64) async throws -> [SeriesCoverage] {
        let interval = table.interval
        let holes = Dictionary(grouping: try await GapStore(pool: pool).holes(table: table, symbols: symbols, since: nil), by: \.symbol)
        let lastClosed = interval.openTime(containing: interval.openTime(containing: now) - 1)
        return try await spans(table: table.name, timeColumn: "open_time", symbols: symbols).compactMap { row in
            guard let symbol = row[0], let first = row[1].flatMap({ Int64($0) }), let last = row[2].flatMap({ Int64($0) }),
                  let rows = row[3].flatMap({ Int64($0) }) else { return nil }
            let found = holes[symbol] ?? []
            var coverage = SeriesCoverage(table: table.name, symbol: symbol, first: first, last: last, rows: rows,
                                          expected: interval.count(from: first, to: last), holes: found.count)
            let outages = found.filter { confirmed.contains($0) }
            coverage.confirmedOutages = outages.count
            coverage.confirmedMissing = outages.reduce(0) { $0 + $1.missing }
            coverage.behind = interval.count(from: interval.nextOpenTime(after: last), to: lastClosed)
            return coverage
        }
    }

    /// An aggregate trades table: ids follow each other, so the ids between the first and last stored one are the
    /// rows expected, and a jump in ids is a hole.
    public func trades(table: TradeTable, symbols: [Symbol]?) async throws -> [SeriesCoverage] {
        let spans = try await spans(table: table.name, timeColumn: "trade_time", idColumn: "agg_trade_id", symbols: symbols)
        let jumps = try await databaseSpan(pool, "SELECT", table.name) {
            try await pool.withConnection { db in
                let filter = try symbols.map { "WHERE `symbol` IN (" + (try $0.map { try db.quote($0.name) }).joined(separator: ",") + ")" } ?? ""
                return try db.query("""
                    SELECT `symbol`, COUNT(*) FROM (
                      SELECT `symbol`, `agg_trade_id` - LAG(`agg_trade_id`) OVER (PARTITION BY `symbol` ORDER BY `agg_trade_id`) AS `step`
                      FROM `\(table.name)` \(filter)) AS w
                    WHERE `step` > 1 GROUP BY `symbol`
                    """)
            }
        }
        let holes = Dictionary(uniqueKeysWithValues: jumps.compactMap { r in r[0].map { ($0, Int(r[1] ?? "0") ?? 0) } })
        return spans.compactMap { row in
            guard let symbol = row[0], let first = row[1].flatMap({ Int64($0) }), let last = row[2].flatMap({ Int64($0) }),
                  let rows = row[3].flatMap({ Int64($0) }), let firstId = row[4].flatMap({ Int64($0) }),
                  let lastId = row[5].flatMap({ Int64($0) }) else { return nil }
            let (span, overflow) = lastId.subtractingReportingOverflow(firstId)
            return SeriesCoverage(table: table.name, symbol: symbol, first: first, last: last, rows: rows,
                                  expected: overflow ? nil : span + 1, holes: holes[symbol] ?? 0)
        }
    }

    /// `funding_rates`: span and rows (Binance's funding intervals differ by symbol and change, so none are expected).
    public func funding(symbols: [Symbol]?) async throws -> [SeriesCoverage] {
        try await spans(table: FundingTable.name, timeColumn: "funding_time", symbols: symbols).compactMap { row in
            guard let symbol = row[0], let first = row[1].flatMap({ Int64($0) }), let last = row[2].flatMap({ Int64($0) }),
                  let rows = row[3].flatMap({ Int64($0) }) else { return nil }
            return SeriesCoverage(table: FundingTable.name, symbol: symbol, first: first, last: last, rows: rows)
        }
    }
}
