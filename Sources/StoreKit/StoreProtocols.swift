import BinanceAPI

// What the pipeline asks of a store, whichever database holds the data: the pipeline calls these protocols only,
// and each store (Stores/MariaDB, Stores/PostgreSQL) conforms.

/// Klines: where a unit stands, and a way to write batches.
public protocol KlineStoring: Sendable {
    func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64?
    /// Writes one batch atomically; returns the number of rows written (0 when nothing is written).
    func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int
    /// Writes several symbols' candles of one table as one transaction (a follower's group commit: the finals of many
    /// units that closed together, in one statement); returns the number of rows written.
    func write(table: KlineTable, groups: [KlineGroup]) async throws -> Int
    /// Records ranges Binance answered with no candles between two it has (an outage, a halt), so `gaps` does
    /// not ask for them again. A store that keeps no such record (a dry run) ignores them.
    func recordOutages(table: KlineTable, holes: [KlineHole]) async throws
}

extension KlineStoring {
    public func recordOutages(table: KlineTable, holes: [KlineHole]) async throws {}

    /// A store without a statement of its own for it writes the groups one by one.
    public func write(table: KlineTable, groups: [KlineGroup]) async throws -> Int {
        var written = 0
        for group in groups { written += try await write(table: table, symbol: group.symbol, klines: group.klines) }
        return written
    }
}

/// One symbol's candles in a write of several symbols.
public struct KlineGroup: Sendable, Equatable {
    public let symbol: Symbol
    public let klines: [Kline]
    public init(symbol: Symbol, klines: [Kline]) {
        self.symbol = symbol
        self.klines = klines
    }
}

/// Funding rates: where a symbol stands, and a way to write batches.
public protocol FundingStoring: Sendable {
    /// The same store writing the table of `market` (`FundingTable.name(for:)`).
    func table(for market: Market) -> any FundingStoring
    func lastFundingTime(symbol: Symbol) async throws -> Int64?
    func write(symbol: Symbol, rows: [FundingRate]) async throws -> Int
}

/// Aggregate trades: where a symbol stands (by id, and in time), and a way to write batches.
public protocol TradeStoring: Sendable {
    func lastTradeId(table: TradeTable, symbol: Symbol) async throws -> Int64?
    /// The time of the last stored trade: where the archives take over when the last trade is days old.
    func lastTradeTime(table: TradeTable, symbol: Symbol) async throws -> Int64?
    func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int
}


/// USD-M open interest and trader ratios (`futures_metrics`): where a symbol stands, and a way to write batches.
public protocol MetricsStoring: Sendable {
    func lastMetricTime(symbol: Symbol) async throws -> Int64?
    /// Writes one batch atomically; a value the batch lacks (nil) keeps what is stored.
    func write(symbol: Symbol, rows: [FuturesMetric]) async throws -> Int
}
