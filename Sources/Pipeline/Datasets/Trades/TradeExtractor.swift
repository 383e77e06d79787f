import BinanceAPI
import BinanceArchive
import Clocks
import Logging
import StoreKit
import Telemetry
import Tracing

/// Fetches one symbol's aggregate trades incrementally by id: `fromId` = last stored id + 1. With nothing
/// stored, it finds the first trade at or after the start time by asking hour-long windows (Binance rejects
/// `startTime`/`endTime` an hour or more apart), then pages by id. A run stops once it reaches the trades of the
/// moment it started, or after `maxPages`; the next run continues from the last stored id, so nothing is skipped.
///
/// With `--source auto`, the whole closed days and months between the start (or the last stored trade) and today
/// come from the archives' aggTrades files, and REST by id does the rest: the ids a file lacks (aggregate trade
/// ids follow each other, so a jump in ids is a hole), the periods without a file, and today.
public struct TradeExtractor: UnitWork {
    public let market: Market
    public let symbol: Symbol
    let client: any TradeSource
    let store: any TradeStoring
    let clock: any WallClock
    let startTime: Int64
    /// `--start`/`--end`: the trades of `[start, end]` (times, inclusive) are fetched whatever is stored, so older
    /// trades are filled in below newer ones; nil: resume from the last stored id.
    let backfill: ClosedRange<Int64>?
    public let batchSize: Int
    let maxPages: Int
    /// `--dry-run`: files are listed, not read (the store, a `DryRunStore`, writes nothing).
    let dryRun: Bool
    let sourceMode: SourceMode
    let archive: (any ArchiveSource)?
    let logger: Logger
    /// Where the unit records the files it read and its rows' sources (nil: nowhere).
    public var recordsTo: Ledger?

    public var ledger: UnitLedger? {
        recordsTo.map { UnitLedger(ledger: $0, table: TradeTable(market: market).name, symbol: symbol.name, clock: clock) }
    }

    public init(market: Market, symbol: Symbol, client: any TradeSource, store: any TradeStoring, clock: any WallClock,
                startTime: Int64, backfill: ClosedRange<Int64>? = nil, batchSize: Int, maxPages: Int, dryRun: Bool,
                sourceMode: SourceMode = .rest, archive: (any ArchiveSource)? = nil, logger: Logger = Logger(label: "trades")) {
        self.market = market
        self.symbol = symbol
        self.client = client
        self.store = store
        self.clock = clock
        self.startTime = startTime
        self.backfill = backfill
        self.batchSize = batchSize
        self.maxPages = maxPages
        self.dryRun = dryRun
        self.sourceMode = sourceMode
        self.archive = archive
        self.logger = logger
    }

    /// What a run is doing, shared by its steps.
    struct Cursor: Sendable {
        /// The next aggregate trade id wanted (nil until the first trade is known).
        var nextId: Int64?
        var pages = 0
        /// The page cap was reached: stop, the next run continues from the last stored id.
        var capped = false
        /// A backfill's end: trades after it are not stored.
        var lastTime: Int64?
        /// The time of the last trade taken from a file (where a hole in ids starts, for `--source archive`'s message).
        var lastTakenTime: Int64?
    }

    /// Two batches written at once: a month of a busy symbol is tens of millions of trades, and a store's bulk path
    /// (LOAD DATA, COPY) keeps one server core busy per session; the rows of the two never overlap (ids only grow).
    public var writesInFlight: Int { 2 }

    /// Runs one attempt; a retry continues by id after the last trade an earlier attempt wrote.
    public func run(_ attempt: UnitAttempt = .first) async throws -> UnitOutcome {
        try await UnitRunner.run(self, attempt)
    }

    /// Where an attempt starts in time (for the archives) and by id, the moment it stops at, and the time it started.
    public struct TradePlan: Sendable {
        var cursor = Cursor()
        var fromTime: Int64
        var until: Int64
        var runStart: Int64
    }

    public func plan(_ attempt: UnitAttempt, outcome: inout UnitOutcome) async throws -> TradePlan? {
        let table = TradeTable(market: market)
        let runStart = clock.now()
        var plan = TradePlan(fromTime: startTime, until: runStart, runStart: runStart)
        if let previous = attempt.previous.plan, let written = attempt.resumeAfter {
            outcome.plan = previous
            plan.cursor.nextId = written + 1
            plan.fromTime = attempt.previous.lastTime ?? previous.start
            if previous.origin == .explicit { plan.until = previous.end }
        } else if let backfill {
            // Stored trades are upserted again where the range covers them: the range is what was asked for.
            (plan.fromTime, plan.until) = (backfill.lowerBound, backfill.upperBound)
            outcome.plan = FetchPlan(start: plan.fromTime, end: plan.until, origin: .explicit, capped: false)
        } else if let last = try await store.lastTradeId(table: table, symbol: symbol) {
            plan.cursor.nextId = last + 1
            plan.fromTime = try await store.lastTradeTime(table: table, symbol: symbol) ?? runStart
            outcome.plan = FetchPlan(start: last + 1, end: runStart, origin: .resume, capped: false)
        } else {
            outcome.plan = FetchPlan(start: startTime, end: runStart, origin: .lookback, capped: false)
        }
        if outcome.plan?.origin == .explicit { plan.cursor.lastTime = plan.until }
        return plan
    }

    public func write(_ batch: [AggTrade]) async throws -> Int {
        let n = try await store.write(table: TradeTable(market: market), symbol: symbol, trades: batch)
        RunPipelineMetrics.current.written(trades: n, market: market)
        return n
    }

    public static func keys(_ row: AggTrade) -> (time: Int64, key: Int64) { (row.time, row.id) }

    /// The first trade at or after `from` (up to `to`), asking hour-long windows.
    func firstTrade(from: Int64, to: Int64, outcome: inout UnitOutcome) async throws -> Int64? {
        var windowStart = from
        while windowStart <= to {
            try Task.checkCancellation()
            let windowEnd = min(windowStart + AggTrade.maxWindowMilliseconds - 1, to)
            let first = try await client.aggTrades(symbol: symbol, fromId: nil, startTime: windowStart, endTime: windowEnd, limit: 1)
            outcome.requests += 1
            if let id = first.first?.id { return id }
            windowStart = windowEnd + 1
        }
        return nil
    }

    /// Pages by id from `cursor.nextId`: up to (not including) id `before`, or without it until the trades of
    /// `until` (the moment the run started) or a short page; `pageLimit` pages at most (default: the run's cap).
    func page(_ cursor: inout Cursor, before: Int64?, until: Int64, writer: BatchWriter<AggTrade>,
              outcome: inout UnitOutcome, pageLimit: Int? = nil) async throws {
        while let fromId = cursor.nextId, before.map({ fromId < $0 }) ?? true {
            guard cursor.pages < (pageLimit ?? maxPages) else {
                cursor.capped = true
                return
            }
            try Task.checkCancellation()
            var page = try await client.aggTrades(symbol: symbol, fromId: fromId)
            outcome.requests += 1
            cursor.pages += 1
            guard let last = page.last else { return }
            guard page.first.map({ $0.id >= fromId }) ?? true, zip(page, page.dropFirst()).allSatisfy({ $0.id < $1.id }) else {
                throw BinanceError.malformedBody("aggregate trades out of order or before fromId \(fromId)")
            }
            let full = page.count >= AggTrade.maxLimit
            if let before { page.removeAll { $0.id >= before } }
            if let end = cursor.lastTime { page.removeAll { $0.time > end } }
            outcome.fetched += page.count
            try await writer.append(page)
            cursor.nextId = last.id + 1
            if before == nil && (!full || last.time >= until) { return }
            if !full { return }
        }
    }

}

/// A trade unit's files, walked by the unit runner (`ArchiveWalk`) in time order: their trades by id, and REST by id
/// for the ids a file lacks (before the file's next row is written, so the writes stay in id order). Periods without
/// a file are left to the ids: the next file's first row shows the jump, and REST pages across it.
extension TradeExtractor: ArchivedWork {
    public var archives: ArchiveUse { ArchiveUse(mode: sourceMode, source: archive, listOnly: dryRun) }

    public var archiveLogger: Logger {
        var logger = logger
        logger[metadataKey: "unit"] = "\(market.rawValue) \(symbol)"
        return logger
    }

    public var rowsName: String { "trades" }

    /// Trades are not on a time grid: a hole is a jump in ids.
    public var grid: Int64? { nil }

    public func segments(_ plan: inout TradePlan, outcome: inout UnitOutcome) async throws -> (segments: [ArchiveSegment], range: ClosedRange<Int64>)? {
        let segments = ArchivePlanner.segments(market: market, symbol: symbol, dataset: .aggTrades, step: 1, start: plan.fromTime, end: plan.until,
                                               now: plan.runStart)
        return (segments, plan.fromTime...max(plan.fromTime, plan.until))
    }

    /// By id from the first trade of the range (or after the last one written), until the trades of the run's start.
    public func fetchREST(_ plan: inout TradePlan, into writer: BatchWriter<AggTrade>, outcome: inout UnitOutcome) async throws {
        defer { if plan.cursor.capped { outcome.plan?.capped = true } }
        if plan.cursor.nextId == nil {
            plan.cursor.nextId = try await firstTrade(from: plan.fromTime, to: plan.until, outcome: &outcome)
        }
        try await page(&plan.cursor, before: nil, until: plan.until, writer: writer, outcome: &outcome)
    }

    /// A stretch no file covers (before the first whole day, today): REST by id starts from its first trade; today's
    /// trades come after the files (`finish`).
    public func rest(_ from: Int64, _ to: Int64, _ plan: inout TradePlan, into writer: BatchWriter<AggTrade>, outcome: inout UnitOutcome) async throws {
        if sourceMode == .archive {
            outcome.uncovered(from: from, to: to)
        } else if plan.cursor.nextId == nil, to < plan.until {
            plan.cursor.nextId = try await firstTrade(from: from, to: to, outcome: &outcome)
        }
    }

    public func finish(_ plan: inout TradePlan, into writer: BatchWriter<AggTrade>, outcome: inout UnitOutcome) async throws {
        guard sourceMode != .archive else { return }
        try await fetchREST(&plan, into: writer, outcome: &outcome)
    }

    public func format(_ file: ArchiveFile, _ plan: TradePlan) -> ArchiveRowFormat<AggTrade> {
        let (from, until) = (plan.fromTime, plan.until)
        return ArchiveRowFormat<AggTrade>(reader: ArchiveCSV.aggTradeRows, key: \.id) { trade in
            guard file.range.contains(trade.time), trade.time >= from, trade.time <= until else { return false }
            // One trade on its own (the checks of a REST page, "Compressed/Aggregate Trades List").
            try AggTrade.check(trade, latest: until + 60_000)
            return true
        }
    }

    /// A file's trades after the last id taken; a jump in ids is paged from REST first (or, with `--source archive`,
    /// counted as lacked).
    public func take(_ trades: [AggTrade], of file: ArchiveFile, _ plan: inout TradePlan, into writer: BatchWriter<AggTrade>,
                     outcome: inout UnitOutcome) async throws {
        var take: [AggTrade] = []
        take.reserveCapacity(trades.count)
        for trade in trades {
            if let next = plan.cursor.nextId {
                if trade.id < next { continue }  // stored already, or fetched from REST
                if trade.id > next {
                    try await ArchiveWalk<Self>.append(take, into: writer, outcome: &outcome)
                    take.removeAll(keepingCapacity: true)
                    if sourceMode == .archive {
                        outcome.lack(trade.id - next, from: plan.cursor.lastTakenTime ?? file.range.lowerBound, to: trade.time)
                    } else {
                        await writer.setSource(.archiveHole)
                        try await page(&plan.cursor, before: trade.id, until: plan.until, writer: writer, outcome: &outcome)
                        await writer.setSource(.archive)
                        if plan.cursor.capped {
                            outcome.plan?.capped = true
                            throw ArchiveWalkStop()
                        }
                    }
                }
            }
            take.append(trade)
            plan.cursor.nextId = trade.id + 1
            plan.cursor.lastTakenTime = trade.time
        }
        try await ArchiveWalk<Self>.append(take, into: writer, outcome: &outcome)
    }

    /// The file's trades come by id; with no id known yet, from the first trade of its period.
    public func unread(_ file: ArchiveFile, _ read: ArchiveRead, taken: Int, _ plan: inout TradePlan, into writer: BatchWriter<AggTrade>,
                       outcome: inout UnitOutcome) async throws {
        if plan.cursor.nextId == nil && sourceMode != .archive {
            plan.cursor.nextId = try await firstTrade(from: max(plan.fromTime, file.range.lowerBound), to: file.range.upperBound - 1, outcome: &outcome)
        }
    }
}
