import BinanceAPI
import BinanceArchive
import Clocks
import Logging
import StoreKit
import Telemetry
import Tracing

/// Fetches one unit (market x symbol x timeframe): plans its range from the store, pages forward through
/// Binance, validates every row, drops the still-open candle, and streams closed candles to its `BatchWriter`.
///
/// Memory stays bounded whatever the range: one page and at most two batches are held at a time.
public actor SymbolExtractor: UnitWork {
    public struct Settings: Sendable {
        public var planner: RangePlanner
        /// Klines per request; nil picks the size that buys the most klines per unit of weight.
        public var pageLimit: Int?
        public var batchSize: Int
        /// `--source`: REST only, or the archives for whole closed months and days (see `ArchivePlanner`).
        public var sourceMode: SourceMode
        public var archive: (any ArchiveSource)?
        /// `--dry-run`: files are not downloaded, only asked for their size (HEAD); the plan is in the outcome.
        public var listArchiveFiles: Bool
        /// Where the unit records the files it read and its rows' sources (nil: nowhere, as in a dry run).
        public var ledger: Ledger?

        public init(planner: RangePlanner = RangePlanner(), pageLimit: Int? = nil, batchSize: Int = 2000,
                    sourceMode: SourceMode = .rest, archive: (any ArchiveSource)? = nil, listArchiveFiles: Bool = false, ledger: Ledger? = nil) {
            self.ledger = ledger
            self.planner = planner
            self.pageLimit = pageLimit
            self.batchSize = batchSize
            self.sourceMode = sourceMode
            self.archive = archive
            self.listArchiveFiles = listArchiveFiles
        }
    }


    public let unit: ExtractionUnit
    let interval: KlineInterval
    let table: KlineTable
    let source: any KlineSource
    let store: any KlineStoring
    let clock: any WallClock
    let settings: Settings
    let progress: (any ProgressObserver)?
    let logger: Logger

    public init(unit: ExtractionUnit, source: any KlineSource, store: any KlineStoring, clock: any WallClock,
                settings: Settings, progress: (any ProgressObserver)? = nil, logger: Logger = Logger(label: "extractor")) {
        precondition(unit.interval != nil, "SymbolExtractor extracts klines")
        self.unit = unit
        interval = unit.interval!
        table = unit.table!
        self.source = source
        self.store = store
        self.clock = clock
        self.settings = settings
        self.progress = progress
        self.logger = logger
    }

    /// Outages Binance confirmed during this attempt, recorded once the candles around them are stored.
    private var outages: [KlineHole] = []

    /// Runs one attempt. A retry keeps the first attempt's range (so a catch-up cap is not pushed forward by what
    /// the first attempt wrote) and starts after the last candle an earlier attempt wrote.
    public func run(_ attempt: UnitAttempt = .first) async throws -> Outcome {
        defer { progress?.finished(unit) }
        return try await UnitRunner.run(self, attempt)
    }

    /// An attempt's range, and the open time of the newest candle Binance has shown this unit (at first the newest an
    /// earlier attempt wrote): a candle after it that is not its next one means Binance has none in between (an outage,
    /// a halt), which it has just confirmed.
    public struct KlinePlan: Sendable {
        var range: FetchPlan
        var previous: Int64?
    }

    public func plan(_ attempt: UnitAttempt, outcome: inout Outcome) async throws -> KlinePlan? {
        var plan: FetchPlan
        var storedBefore: Int64?
        if let previous = attempt.previous.plan {
            plan = previous
        } else {
            storedBefore = try await store.lastOpenTime(table: table, symbol: unit.symbol)
            plan = settings.planner.plan(interval: interval, lastStored: storedBefore, now: clock.now())
        }
        if let delivery = unit.symbol.deliveryTime, plan.end >= delivery {
            // A delivery contract has no candles after it delivers: it is complete there, not behind. Once its last candle
            // is stored, nothing is asked again (Binance may no longer list it at all).
            plan.end = interval.openTime(containing: delivery - 1)
            if plan.origin != .listing { plan.start = min(plan.start, plan.end + 1) }
            if plan.origin == .resume, let storedBefore, storedBefore >= plan.end { plan.start = plan.end + 1 }
        }
        outcome.plan = plan
        outcome.storedBefore = attempt.previous.storedBefore ?? storedBefore
        if let written = attempt.resumeAfter {
            plan.start = max(plan.start, written + 1)
            // What the earlier attempts fetched counts against the cap.
            plan.candleBudget = plan.candleBudget.map { $0 - Int64(attempt.previous.fetched) }
        }
        progress?.planned(unit, candles: plan.plannedCandles(interval))
        if plan.origin == .listing && plan.start == 0 && unit.market.klinesAnswerNewestFirst {
            // `startTime=0` finds nothing where the newest candles of a window come first: find the first one.
            plan.start = try await firstOpenTime(from: Self.coinmLaunch, through: plan.end, outcome: &outcome) ?? (plan.end + 1)
        }
        guard plan.start <= plan.end else {
            outcome.caughtUp = true
            return nil
        }
        return KlinePlan(range: plan, previous: attempt.resumeAfter)
    }

    public func write(_ batch: [Kline]) async throws -> Int {
        let n = try await store.write(table: table, symbol: unit.symbol, klines: batch)
        RunPipelineMetrics.current.written(klines: n, table: table)
        return n
    }

    public nonisolated var batchSize: Int { settings.batchSize }

    public nonisolated var ledger: UnitLedger? {
        settings.ledger.map { UnitLedger(ledger: $0, table: table.name, symbol: unit.symbol.name, clock: clock) }
    }

    public static func keys(_ row: Kline) -> (time: Int64, key: Int64) { (row.openTime, row.openTime) }

    /// Records the silences Binance confirmed between candles that are now stored (whether the attempt succeeded or
    /// not), so `gaps` does not ask again.
    public func completed(lastStored stored: Int64?) async throws {
        guard let stored else { return }
        let confirmed = outages.filter { $0.to < stored }
        guard !confirmed.isEmpty else { return }
        try await store.recordOutages(table: table, holes: confirmed)
        logger.info("Binance has no candles between stored ones (an outage or a halt); recorded as confirmed", metadata: [
            "unit": "\(unit)", "outages": "\(confirmed.map(\.description))",
        ])
    }


    /// A candle opening at `openTime` after `previous` (see `KlinePlan`): notes the outage between them, if any.
    func noteOutage(before openTime: Int64, previous: inout Int64?) {
        if let previous, openTime > interval.nextOpenTime(after: previous) {
            let from = interval.nextOpenTime(after: previous), to = interval.openTime(containing: openTime - 1)
            outages.append(KlineHole(symbol: unit.symbol.name, from: from, to: to, missing: interval.count(from: from, to: to)))
        }
        previous = max(previous ?? openTime, openTime)
    }

    /// Pages `plan` from REST into `writer` (`previous`: see `KlinePlan`).
    func fetch(plan: FetchPlan, into writer: BatchWriter<Kline>, outcome: inout Outcome, previous: inout Int64?) async throws {
        let limit = min(settings.pageLimit ?? unit.market.mostKlinesPerWeightLimit, unit.market.maxKlinesLimit)
        var cursor = plan.start
        var remaining = plan.candleBudget
        let windowed = unit.market.klinesAnswerNewestFirst
        var probed = false
        while cursor <= plan.end {
            try Task.checkCancellation()
            let pageLimit = remaining.map { Int(clamping: min(Int64(limit), max($0, 1))) } ?? limit
            // Where the newest candles of [startTime, endTime] come first (COIN-M), a window holds at most one page and
            // spans at most 200 days, so the page is all of it and nothing is skipped.
            let requestEnd = windowed ? window(from: cursor, candles: pageLimit, end: plan.end) : plan.end
            let request = KlinesRequest(market: unit.market, symbol: unit.symbol, interval: interval,
                                        startTime: cursor, endTime: requestEnd, limit: pageLimit, series: unit.series)
            let page = try await source.klines(request)
            outcome.requests += 1
            let now = clock.now()
            // The whole page is checked before a single row of it reaches the writer.
            try Self.check(page, request: request, interval: interval, now: now)
            let closed = page.prefix { !$0.isOpen(at: now) }
            let reachedOpen = closed.count < page.count
            if reachedOpen {
                // Never store the still-open candle as if it were final; a later run stores it once closed.
                outcome.skippedOpenCandle = true
            }
            for kline in closed { noteOutage(before: kline.openTime, previous: &previous) }
            if !closed.isEmpty {
                outcome.fetched += closed.count
                RunPipelineMetrics.current.fetched(klines: closed.count, table: table, fromArchive: false)
                try await writer.append(Array(closed))
                progress?.advanced(unit, candles: closed.count)
            }
            if windowed && page.isEmpty && previous == nil && !probed {
                // An empty first window: the range may start long before the contract was listed. Its first candle is found
                // (a few one-candle requests) instead of asking every empty window before it.
                probed = true
                guard let first = try await firstOpenTime(from: requestEnd + 1, through: plan.end, outcome: &outcome) else {
                    outcome.caughtUp = true
                    return
                }
                cursor = first
                continue
            }
            // A short page means Binance has nothing more in range; an open candle is always the newest. A short window
            // says so only of itself: the next window follows it.
            let windowDone = windowed && page.count < pageLimit
            guard !reachedOpen, windowDone || page.count >= pageLimit else {
                outcome.caughtUp = true
                return
            }
            if let left = remaining {
                remaining = left - Int64(closed.count)
                if left - Int64(closed.count) <= 0 {
                    // The catch-up cap: this run's share of work is done; the next run continues from here.
                    outcome.caughtUp = false
                    return
                }
            }
            cursor = windowDone ? requestEnd + 1 : (page.last.map { $0.openTime + 1 } ?? requestEnd + 1)
        }
        outcome.caughtUp = true
    }

    /// The end of a window from `start` that holds at most `candles` candles and no more than the market's span.
    private func window(from start: Int64, candles: Int, end: Int64) -> Int64 {
        let step = interval.fixedMilliseconds ?? 31 * 86_400_000
        let (byCount, overflow) = start.addingReportingOverflow(Int64(max(candles - 1, 0)) * step)
        var last = overflow ? end : min(end, byCount)
        if let span = unit.market.maxKlinesSpanMilliseconds { last = min(last, start + span - 1) }
        return last
    }

    /// The open time of the symbol's first candle in `[from, end]`. Where Binance answers a window's oldest candles
    /// first, one request (`startTime`, `limit=1`). On a market that answers a window's newest candles first:
    /// 200-day windows from `from` (a delivery contract's: no earlier than 400 days before it delivers), the first that
    /// holds a candle found by its daily candles (intervals up to a day) or narrowed down by halves, one candle a request
    /// (weight 1). Nil when there is none.
    func firstOpenTime(from: Int64, through end: Int64, outcome: inout Outcome) async throws -> Int64? {
        // One checked page of `[a, b]`: its candles' open times.
        func page(_ a: Int64, _ b: Int64, interval: KlineInterval, limit: Int) async throws -> [Int64] {
            let request = KlinesRequest(market: unit.market, symbol: unit.symbol, interval: interval, startTime: a, endTime: b, limit: limit,
                                        series: unit.series)
            let page = try await source.klines(request)
            outcome.requests += 1
            try Self.check(page, request: request, interval: interval, now: clock.now())
            return page.map(\.openTime)
        }
        guard let span = unit.market.maxKlinesSpanMilliseconds else {
            return try await page(from, end, interval: interval, limit: 1).first
        }
        func newest(_ a: Int64, _ b: Int64) async throws -> Int64? { try await page(a, b, interval: interval, limit: 1).last }
        // A window's daily candles, all of them (a window spans at most 200 days): the first is the day the first candle of
        // any interval up to a day opens in, one request a window (weight 2) instead of narrowing by halves.
        func firstDay(_ a: Int64, _ b: Int64) async throws -> Int64? {
            try await page(a, b, interval: .d1, limit: min(Int((b - a) / 86_400_000) + 2, unit.market.maxKlinesLimit)).first
        }
        let byDays = (interval.fixedMilliseconds ?? .max) <= 86_400_000 && span / 86_400_000 + 2 <= Int64(unit.market.maxKlinesLimit)
        var start = from
        if let delivery = unit.symbol.deliveryTime { start = max(start, delivery - 400 * 86_400_000) }
        // Daily candles open at midnight: a window starts at one, or the day `from` falls in would be missed.
        if byDays { start = Int64.floorDivide(start, 86_400_000) * 86_400_000 }
        while start <= end {
            try Task.checkCancellation()
            let windowEnd = min(end, start + span - 1)
            if byDays {
                if let day = try await firstDay(start, windowEnd) { return max(from, day) }
            } else if var found = try await newest(start, windowEnd) {
                // The first candle is in [low, found].
                var low = start
                while low < found {
                    let mid = low + (found - low) / 2
                    if let earlier = try await newest(low, mid) { found = earlier } else { low = mid + 1 }
                }
                return found
            }
            start = windowEnd + 1
        }
        return nil
    }

    /// COIN-M futures began trading in August 2020: no candle is older.
    static let coinmLaunch: Int64 = 1_596_240_000_000  // 2020-08-01

    /// A page is trusted whole or not at all (Binance, "Kline/Candlestick Data": klines with open time in
    /// [startTime, endTime], ascending, at most `limit`; only the newest may still be open). Every candle must also be
    /// consistent on its own (`Kline.validate`).
    static func check(_ page: [Kline], request: KlinesRequest, interval: KlineInterval, now: Int64) throws(BinanceError) {
        guard page.count <= request.limit else {
            throw .malformedBody("\(page.count) klines in a page asked for at most \(request.limit)")
        }
        var previous: Int64?
        for kline in page {
            let at = UTCCalendar.iso8601(kline.openTime)
            if let start = request.startTime, kline.openTime < start {
                throw .malformedBody("kline at \(at) opens before the requested startTime \(UTCCalendar.iso8601(start))")
            }
            if let end = request.endTime, kline.openTime > end {
                throw .malformedBody("kline at \(at) opens after the requested endTime \(UTCCalendar.iso8601(end))")
            }
            if let previous, kline.openTime <= previous {
                throw .malformedBody(kline.openTime == previous ? "kline at \(at) appears twice"
                                     : "klines out of order: \(at) after \(UTCCalendar.iso8601(previous))")
            }
            if kline.openTime > now + 60_000 {  // a minute of clock skew between Binance and us is no lie
                throw .malformedBody("kline at \(at) opens in the future (now \(UTCCalendar.iso8601(now)))")
            }
            previous = kline.openTime
        }
        for (index, kline) in page.enumerated() {
            if kline.isOpen(at: now) && index != page.count - 1 {
                throw .malformedBody("kline at \(UTCCalendar.iso8601(kline.openTime)) is still open but is not the newest of its page")
            }
            do { try kline.validate(interval: interval, series: request.series) } catch { throw .invalidKline(error) }
        }
    }
}
