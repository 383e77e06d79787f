import BinanceAPI
import StoreKit

// What a run reads and writes when it may write nothing (`--dry-run`), or when a table does not exist yet: the one
// place dry-run stores live.

/// `--dry-run`: reads where each unit stands from the database when one is configured, writes nothing.
public struct DryRunStore: KlineStoring {
    public let reader: (any KlineStoring)?
    public init(reader: (any KlineStoring)?) { self.reader = reader }

    public func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64? {
        try await reader?.lastOpenTime(table: table, symbol: symbol)
    }

    public func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int { 0 }
}

/// In a dry run, a table that does not exist yet holds nothing (instead of failing the read).
struct MissingTablesAreEmpty: KlineStoring {
    let store: any KlineStoring
    let existing: Set<String>

    func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64? {
        existing.contains(table.name) ? try await store.lastOpenTime(table: table, symbol: symbol) : nil
    }

    func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int { 0 }
}

/// A dry run without a database, or before the table exists: nothing stored, nothing written.
struct EmptyFundingStore: FundingStoring {
    func table(for market: Market) -> any FundingStoring { self }
    func lastFundingTime(symbol: Symbol) async throws -> Int64? { nil }
    func write(symbol: Symbol, rows: [FundingRate]) async throws -> Int { 0 }
}

struct EmptyTradeStore: TradeStoring {
    func lastTradeId(table: TradeTable, symbol: Symbol) async throws -> Int64? { nil }
    func lastTradeTime(table: TradeTable, symbol: Symbol) async throws -> Int64? { nil }
    func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int { 0 }
}

struct EmptyMetricsStore: MetricsStoring {
    func lastMetricTime(symbol: Symbol) async throws -> Int64? { nil }
    func write(symbol: Symbol, rows: [FuturesMetric]) async throws -> Int { 0 }
}
