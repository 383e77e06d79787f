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
    /// Rows written from archive files and from REST (of which for what a file lacked), as `row_sources` adds them up
    /// over runs (nil: nothing recorded, e.g. rows written before the ledger existed).
    public var fromFiles: Int64?
    public var fromREST: Int64?
    public var fromRESTForFileHoles: Int64?

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

/// What `coverage` asks of a store: the queries that differ between databases. The arithmetic on their answers is the
/// same for every store (the extension below).
public protocol CoverageReading: Sendable {
    func existingTables() async throws -> Set<String>
    /// Why an existing kline table cannot be read as the project's (epoch numbers for times, say), or nil.
    func unreadable(_ table: KlineTable) async throws -> String?
    /// Per symbol (all stored, or only `symbols`), ordered by symbol: symbol, first and last `timeColumn` in Unix ms,
    /// row count, and with `idColumn` its smallest and largest value.
    func spans(table: String, timeColumn: String, idColumn: String?, symbols: [Symbol]?) async throws -> [[String?]]
    /// Per symbol: how many times `agg_trade_id` jumps by more than one from one stored trade to the next.
    func idJumps(table: String, symbols: [Symbol]?) async throws -> [[String?]]
    /// The hole finder and the confirmed outages.
    var gaps: any GapStoring { get }
}

extension CoverageReading {
    /// A kline table: candles expected between the first and last stored one, holes found by the gap filler's
    /// query, confirmed outages, and how many closed candles the table is behind `now`.
    public func klines(table: any GapTable, symbols: [Symbol]?, confirmed: Set<KlineHole>, now: Int64) async throws -> [SeriesCoverage] {
        let interval = table.interval
        let holes = Dictionary(grouping: try await gaps.holes(table: table, symbols: symbols, since: nil), by: \.symbol)
        let lastClosed = interval.openTime(containing: interval.openTime(containing: now) - 1)
        return try await spans(table: table.name, timeColumn: table.timeColumn, idColumn: nil, symbols: symbols).compactMap { row in
            guard row.count >= 4, let symbol = row[0], let first = row[1].flatMap({ Int64($0) }), let last = row[2].flatMap({ Int64($0) }),
                  let rows = row[3].flatMap({ Int64($0) }) else { return nil }
            let found = holes[symbol] ?? []
            var coverage = SeriesCoverage(table: table.name, symbol: symbol, first: first, last: last, rows: rows,
                                          expected: interval.count(from: first, to: last), holes: found.count)
            let outages = found.filter { confirmed.contains($0) }
            coverage.confirmedOutages = outages.count
            coverage.confirmedMissing = outages.reduce(0) { $0 + $1.missing }
            // A delivery contract is complete at its delivery: nothing after it is behind.
            let end = (try? Symbol(validating: symbol))?.deliveryTime.map { min(lastClosed, interval.openTime(containing: $0 - 1)) } ?? lastClosed
            coverage.behind = interval.count(from: interval.nextOpenTime(after: last), to: end)
            return coverage
        }
    }

    /// An aggregate trades table: ids follow each other, so the ids between the first and last stored one are the
    /// rows expected, and a jump in ids is a hole.
    public func trades(table: TradeTable, symbols: [Symbol]?) async throws -> [SeriesCoverage] {
        let spans = try await spans(table: table.name, timeColumn: "trade_time", idColumn: "agg_trade_id", symbols: symbols)
        let jumps = try await idJumps(table: table.name, symbols: symbols)
        let holes = Dictionary(jumps.compactMap { r in r.first.flatMap { $0 }.map { ($0, Int(r.last.flatMap { $0 } ?? "0") ?? 0) } },
                               uniquingKeysWith: { a, _ in a })
        return spans.compactMap { row in
            guard row.count >= 6, let symbol = row[0], let first = row[1].flatMap({ Int64($0) }), let last = row[2].flatMap({ Int64($0) }),
                  let rows = row[3].flatMap({ Int64($0) }), let firstId = row[4].flatMap({ Int64($0) }),
                  let lastId = row[5].flatMap({ Int64($0) }) else { return nil }
            let (span, overflow) = lastId.subtractingReportingOverflow(firstId)
            return SeriesCoverage(table: table.name, symbol: symbol, first: first, last: last, rows: rows,
                                  expected: overflow ? nil : span + 1, holes: holes[symbol] ?? 0)
        }
    }

    /// `funding_rates` (or `coinm_funding_rates`): span and rows (Binance's funding intervals differ by symbol and
    /// change, so none are expected).
    public func funding(table: String = FundingTable.name, symbols: [Symbol]?) async throws -> [SeriesCoverage] {
        try await spans(table: table, timeColumn: "funding_time", idColumn: nil, symbols: symbols).compactMap { row in
            guard row.count >= 4, let symbol = row[0], let first = row[1].flatMap({ Int64($0) }), let last = row[2].flatMap({ Int64($0) }),
                  let rows = row[3].flatMap({ Int64($0) }) else { return nil }
            return SeriesCoverage(table: table, symbol: symbol, first: first, last: last, rows: rows)
        }
    }
}
