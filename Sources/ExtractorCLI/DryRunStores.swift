import BinanceAPI
import StoreKit

/// `--dry-run`: the one wrapper around the store. It reads where each unit stands from the tables that exist (a table
/// that does not exist yet holds nothing, instead of failing the read; without a database nothing is stored), and
/// writes nothing, for every dataset.
public struct DryRunStore: Sendable {
    let tables: PreparedTables?
    /// The funding table this value reads (`FundingStoring.table(for:)`).
    let fundingMarket: Market?
    /// Kline reads go here when no prepared store is given (a test's store, whose every table exists).
    let klineReader: (any KlineStoring)?

    /// Around a prepared store, or nothing (a dry run without a database).
    public init(_ tables: PreparedTables?) {
        self.tables = tables
        fundingMarket = nil
        klineReader = nil
    }

    /// Around a klines store whose tables all exist.
    public init(reader: any KlineStoring) {
        tables = nil
        fundingMarket = nil
        klineReader = reader
    }

    private init(tables: PreparedTables?, fundingMarket: Market) {
        self.tables = tables
        self.fundingMarket = fundingMarket
        klineReader = nil
    }

    /// The prepared store, where `table` exists.
    private func prepared(holding table: String) -> PreparedTables? {
        guard let tables, tables.existing.contains(table) else { return nil }
        return tables
    }
}

extension DryRunStore: KlineStoring {
    public func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64? {
        if let klineReader { return try await klineReader.lastOpenTime(table: table, symbol: symbol) }
        return try await prepared(holding: table.name)?.klines.lastOpenTime(table: table, symbol: symbol)
    }

    public func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int { 0 }
}

extension DryRunStore: FundingStoring {
    public func table(for market: Market) -> any FundingStoring { DryRunStore(tables: tables, fundingMarket: market) }

    public func lastFundingTime(symbol: Symbol) async throws -> Int64? {
        guard let market = fundingMarket, let store = prepared(holding: FundingTable.name(for: market))?.funding else { return nil }
        return try await store.table(for: market).lastFundingTime(symbol: symbol)
    }

    public func write(symbol: Symbol, rows: [FundingRate]) async throws -> Int { 0 }
}

extension DryRunStore: TradeStoring {
    public func lastTradeId(table: TradeTable, symbol: Symbol) async throws -> Int64? {
        try await prepared(holding: table.name)?.trades?.lastTradeId(table: table, symbol: symbol)
    }

    public func lastTradeTime(table: TradeTable, symbol: Symbol) async throws -> Int64? {
        try await prepared(holding: table.name)?.trades?.lastTradeTime(table: table, symbol: symbol)
    }

    public func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int { 0 }
}

extension DryRunStore: MetricsStoring {
    public func lastMetricTime(symbol: Symbol) async throws -> Int64? {
        try await prepared(holding: MetricsTable.name)?.metrics?.lastMetricTime(symbol: symbol)
    }

    public func write(symbol: Symbol, rows: [FuturesMetric]) async throws -> Int { 0 }
}
