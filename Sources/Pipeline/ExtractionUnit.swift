import BinanceAPI
import Storage

/// One unit of work: a market x symbol x timeframe, written to its own table.
public struct ExtractionUnit: Sendable, Hashable, CustomStringConvertible {
    public let market: Market
    public let symbol: Symbol
    public let interval: KlineInterval

    public init(market: Market, symbol: Symbol, interval: KlineInterval) {
        self.market = market
        self.symbol = symbol
        self.interval = interval
    }

    public var table: KlineTable { KlineTable(market: market, interval: interval) }
    public var description: String { "\(market.rawValue) \(symbol) \(interval.rawValue)" }
}

/// What storage the pipeline needs: where a unit stands, and a way to write batches.
public protocol KlineStoring: Sendable {
    func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64?
    /// Writes one batch atomically; returns the number of rows written (0 when nothing is written).
    func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int
}

extension KlineStore: KlineStoring {
    public func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int {
        try await upsert(table: table, symbol: symbol, klines: klines)
        return klines.count
    }
}

/// `--dry-run`: reads where each unit stands from the database when one is configured, writes nothing.
public struct DryRunStore: KlineStoring {
    public let reader: (any KlineStoring)?
    public init(reader: (any KlineStoring)?) { self.reader = reader }

    public func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64? {
        try await reader?.lastOpenTime(table: table, symbol: symbol)
    }

    public func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int { 0 }
}

/// Live progress of units, for a terminal display.
public protocol ProgressObserver: Sendable {
    func planned(_ unit: ExtractionUnit, candles: Int64)
    func advanced(_ unit: ExtractionUnit, candles: Int)
    func finished(_ unit: ExtractionUnit)
}
