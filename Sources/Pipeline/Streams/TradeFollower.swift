import BinanceAPI
import Clocks
import Logging
import StoreKit
import Telemetry
import Tracing

/// Keeps one symbol's aggregate-trade table current from its `<symbol>@aggTrade` stream (a `LongRunningUnit`): at start
/// and whenever a (new) connection carries the stream, it catches up by id from the last stored trade through the jobs'
/// `TradeExtractor` (REST, or the archives when far behind) while the stream's events queue; then it writes every trade
/// exactly once, in id order. Aggregate trade ids follow each other, so a jump is a hole: the ids between come from REST
/// (`fromId`) before the later trade is written, and an id already stored (a repeat, an overlap with the catch-up) is
/// skipped. Trades are written in batches: whatever has queued, once the inbox is empty (or `batchSize` trades).
public struct TradeFollower: LongRunningUnit {
    public struct Settings: Sendable {
        public var batchSize = 1_000
        /// The most REST pages one hole may take; a longer one ends the attempt and the restart's catch-up takes it.
        public var maxFillPages = 50
        /// Shared by the process's followers: how many catch up at once (nil: no limit).
        public var gate: CatchUpGate?
        public init() {}
    }

    public let unit: ExtractionUnit
    let inbox: FollowInbox
    let source: any TradeSource
    let store: any TradeStoring
    let clock: any WallClock
    /// The jobs' extractor for this symbol, which the catch-ups run (resuming by id from the last stored trade).
    let catchUpWork: @Sendable () -> TradeExtractor
    let settings: Settings
    let logger: Logger
    let monitor: FollowMonitor?
    let name: String

    public init(unit: ExtractionUnit, inbox: FollowInbox, source: any TradeSource, store: any TradeStoring, clock: any WallClock,
                settings: Settings = Settings(), logger: Logger, monitor: FollowMonitor? = nil,
                catchUp: @escaping @Sendable () -> TradeExtractor) {
        self.unit = unit
        self.inbox = inbox
        self.source = source
        self.store = store
        self.clock = clock
        self.settings = settings
        self.logger = logger
        self.monitor = monitor
        catchUpWork = catchUp
        name = MarketStream.aggTrade(unit.symbol).name
    }

    var table: TradeTable { TradeTable(market: unit.market) }

    public func run(_ attempt: UnitAttempt) async throws -> UnitOutcome {
        var outcome = UnitOutcome()
        var pending: [AggTrade] = []
        var last: Int64?
        // When the last catch-up ended: a connection made before that was already buffering while it ran, so it needs
        // no catch-up of its own (a process starting 1,000 units spends one each, not two); what little may lie between
        // the catch-up's last page and the first buffered event is a hole the unit fills from REST when it shows.
        var caughtUpAt = Int64.min
        do {
            last = try await catchUp(outcome: &outcome)
            caughtUpAt = clock.now()
            while let input = await inbox.next() {
                switch input {
                case .connected(let at):
                    guard at > caughtUpAt else {
                        monitor?.caughtUp(name)
                        continue
                    }
                    try await flush(&pending, outcome: &outcome)
                    last = try await catchUp(outcome: &outcome)
                    caughtUpAt = clock.now()
                case .trade(let trade, _):
                    if let stored = last, trade.id <= stored { continue }  // a repeat, or what the catch-up stored
                    if let stored = last, trade.id > stored + 1 {
                        try await flush(&pending, outcome: &outcome)
                        try await fill(after: stored, before: trade.id, outcome: &outcome)
                    }
                    pending.append(trade)
                    outcome.fromStream += 1
                    last = trade.id
                    if pending.count >= settings.batchSize || inbox.count == 0 { try await flush(&pending, outcome: &outcome) }
                case .tick:
                    try await flush(&pending, outcome: &outcome)
                case .kline:
                    continue  // a trade unit's stream carries trades
                }
            }
            try await flush(&pending, outcome: &outcome)
        } catch {
            // What arrived is committed when it can be (SIGTERM); a write that failed is the failure.
            if error is CancellationError || Task.isCancelled {
                try? await flush(&pending, outcome: &outcome)
                outcome.interrupted = true
                return outcome
            }
            throw UnitFailure(underlying: error, partial: outcome)
        }
        outcome.interrupted = true
        return outcome
    }

    /// Everything since the last stored trade, by id, through the jobs' extractor; returns the last stored id.
    private func catchUp(outcome: inout UnitOutcome) async throws -> Int64? {
        let work = catchUpWork()
        let unit = unit
        let (store, table) = (store, table)
        let (part, last) = try await followCatchUp(unit, gate: settings.gate, attempt: { try await work.run(.first) },
                                                   position: { try await store.lastTradeId(table: table, symbol: unit.symbol) })
        outcome.absorb(part)
        outcome.caughtUp = true
        monitor?.caughtUp(name)
        return last
    }

    private func flush(_ pending: inout [AggTrade], outcome: inout UnitOutcome) async throws {
        guard !pending.isEmpty else { return }
        let n = try await store.write(table: table, symbol: unit.symbol, trades: pending)
        outcome.written += n
        outcome.lastTime = max(outcome.lastTime ?? 0, pending.last!.time)
        RunPipelineMetrics.current.written(trades: n, market: unit.market)
        pending.removeAll(keepingCapacity: true)
    }

    /// The trades with ids in `(after, before)` from REST by id, checked and written, before the later trade is.
    private func fill(after: Int64, before: Int64, outcome: inout UnitOutcome) async throws {
        logger.info("aggregate trade ids jumped; the trades between come from REST", metadata: [
            "unit": "\(unit)", "after": "\(after)", "before": "\(before)",
        ])
        var next = after + 1
        var pages = 0
        while next < before {
            guard pages < settings.maxFillPages else {
                throw BinanceError.malformedBody("a hole of \(before - next) aggregate trades of \(unit.symbol) after id \(after): left to the catch-up")
            }
            let page = try await source.aggTrades(symbol: unit.symbol, fromId: next, startTime: nil, endTime: nil, limit: AggTrade.maxLimit)
            outcome.requests += 1
            pages += 1
            try AggTrade.check(page, fromId: next, limit: AggTrade.maxLimit, latest: clock.now() + 60_000)
            let wanted = page.filter { $0.id < before }
            if !wanted.isEmpty {
                outcome.written += try await store.write(table: table, symbol: unit.symbol, trades: wanted)
                outcome.fetched += wanted.count
                outcome.missedFinals += wanted.count  // trades the stream lost
            }
            // Done once the page reaches the later trade; a short page is all REST has (then the catch-up takes over).
            guard let last = page.last, last.id < before - 1, page.count >= AggTrade.maxLimit else { break }
            next = last.id + 1
        }
    }
}
