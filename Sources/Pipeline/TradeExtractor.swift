import BinanceAPI
import Clocks
import Storage
import Telemetry

/// Where aggregate trades are stored (the pipeline's view of `TradeStore`).
public protocol TradeStoring: Sendable {
    func lastTradeId(table: TradeTable, symbol: Symbol) async throws -> Int64?
    func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int
}

extension TradeStore: TradeStoring {
    public func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int {
        try await upsert(table: table, symbol: symbol, trades: trades)
    }
}

/// Fetches one symbol's aggregate trades incrementally by id: `fromId` = last stored id + 1. With nothing
/// stored, it finds the first trade at or after the start time by asking hour-long windows (Binance rejects
/// `startTime`/`endTime` an hour or more apart), then pages by id. A run stops once it reaches the trades of the
/// moment it started, or after `maxPages`; the next run continues from the last stored id, so nothing is skipped.
public struct TradeExtractor: Sendable {
    public let market: Market
    public let symbol: Symbol
    let client: BinanceClient
    let store: any TradeStoring
    let clock: any WallClock
    let startTime: Int64
    let batchSize: Int
    let maxPages: Int
    let dryRun: Bool

    public init(market: Market, symbol: Symbol, client: BinanceClient, store: any TradeStoring, clock: any WallClock,
                startTime: Int64, batchSize: Int, maxPages: Int, dryRun: Bool) {
        self.market = market
        self.symbol = symbol
        self.client = client
        self.store = store
        self.clock = clock
        self.startTime = startTime
        self.batchSize = batchSize
        self.maxPages = maxPages
        self.dryRun = dryRun
    }

    /// Runs one attempt; a retry continues by id after the last trade an earlier attempt wrote.
    public func run(_ attempt: UnitAttempt = .first) async throws -> SymbolExtractor.Outcome {
        var outcome = SymbolExtractor.Outcome()
        let table = TradeTable(market: market)
        let runStart = clock.now()
        let (store, symbol, dryRun) = (store, symbol, dryRun)
        let market = market
        let writer = BatchWriter<AggTrade>(batchSize: batchSize) { batch in
            let n = dryRun ? 0 : try await store.write(table: table, symbol: symbol, trades: batch)
            RunMetrics.current?.add("binance_extractor.agg_trades.written", Double(n), unit: "{trade}",
                                    description: "Aggregate trades written to MariaDB.", attributes: ["market": market.rawValue])
            return n
        }
        var failure: (any Error)?
        do {
            var nextId: Int64?
            if let previous = attempt.previous.plan, let written = attempt.resumeAfter {
                outcome.plan = previous
                nextId = written + 1
            } else if let last = try await store.lastTradeId(table: table, symbol: symbol) {
                nextId = last + 1
                outcome.plan = FetchPlan(start: last + 1, end: runStart, origin: .resume, capped: false)
            } else {
                outcome.plan = FetchPlan(start: startTime, end: runStart, origin: .explicit, capped: false)
                var windowStart = startTime
                while nextId == nil, windowStart <= runStart {
                    try Task.checkCancellation()
                    let windowEnd = windowStart + AggTrade.maxWindowMilliseconds - 1
                    let first = try await client.aggTrades(symbol: symbol, startTime: windowStart, endTime: windowEnd, limit: 1)
                    outcome.requests += 1
                    nextId = first.first?.id
                    windowStart = windowEnd + 1
                }
            }
            var pages = 0
            while let fromId = nextId, pages < maxPages {
                try Task.checkCancellation()
                let page = try await client.aggTrades(symbol: symbol, fromId: fromId)
                outcome.requests += 1
                pages += 1
                guard let last = page.last else { break }
                guard page.first!.id >= fromId, zip(page, page.dropFirst()).allSatisfy({ $0.id < $1.id }) else {
                    throw BinanceError.malformedBody("aggregate trades out of order or before fromId \(fromId)")
                }
                outcome.fetched += page.count
                try await writer.append(page)
                if page.count < AggTrade.maxLimit || last.time >= runStart { break }
                nextId = last.id + 1
            }
            if pages >= maxPages { outcome.plan?.capped = true }
        } catch {
            failure = error
        }
        return try await complete(writer, failure: failure, outcome: outcome) { ($0.time, $0.id) }
    }
}
