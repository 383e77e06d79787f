import BinanceAPI
import Clocks
import Logging
import Storage
import Telemetry

/// Fetches one unit (market x symbol x timeframe): plans its range from the store, pages forward through
/// Binance, validates every row, drops the still-open candle, and streams closed candles to its `BatchWriter`.
///
/// Memory stays bounded whatever the range: one page and at most two batches are held at a time.
public actor SymbolExtractor {
    public struct Settings: Sendable {
        public var planner: RangePlanner
        /// Klines per request; nil picks the size that buys the most klines per unit of weight.
        public var pageLimit: Int?
        public var batchSize: Int

        public init(planner: RangePlanner = RangePlanner(), pageLimit: Int? = nil, batchSize: Int = 2000) {
            self.planner = planner
            self.pageLimit = pageLimit
            self.batchSize = batchSize
        }
    }

    /// What one run of the unit did.
    public struct Outcome: Sendable, Equatable {
        public var plan: FetchPlan?
        public var requests = 0
        public var fetched = 0
        public var written = 0
        /// The first and last open time (funding time, trade time) of the rows the store accepted: what is stored,
        /// not what was fetched.
        public var firstOpenTime: Int64?
        public var lastOpenTime: Int64?
        /// The key (open time, funding time, trade id) of the last row the store accepted: a retry resumes after it
        /// instead of fetching the unit's range again.
        public var resumeAfter: Int64?
        /// The still-open candle was seen and left out.
        public var skippedOpenCandle = false
        /// The run was cancelled; what was fetched was written.
        public var interrupted = false

        public init() {}

        /// Adds what another attempt, or another part of the same unit, did.
        public mutating func absorb(_ other: Outcome) {
            plan = plan ?? other.plan
            requests += other.requests
            fetched += other.fetched
            written += other.written
            firstOpenTime = [firstOpenTime, other.firstOpenTime].compactMap { $0 }.min()
            lastOpenTime = [lastOpenTime, other.lastOpenTime].compactMap { $0 }.max()
            resumeAfter = [resumeAfter, other.resumeAfter].compactMap { $0 }.max()
            skippedOpenCandle = skippedOpenCandle || other.skippedOpenCandle
            interrupted = other.interrupted
        }
    }

    public let unit: ExtractionUnit
    private let interval: KlineInterval
    private let table: KlineTable
    private let source: any KlineSource
    private let store: any KlineStoring
    private let clock: any WallClock
    private let settings: Settings
    private let progress: (any ProgressObserver)?
    private let logger: Logger

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

    /// Runs one attempt. A retry keeps the first attempt's range (so a catch-up cap is not pushed forward by what
    /// the first attempt wrote) and starts after the last candle an earlier attempt wrote.
    public func run(_ attempt: UnitAttempt = .first) async throws -> Outcome {
        var outcome = Outcome()
        var plan: FetchPlan
        if let previous = attempt.previous.plan {
            plan = previous
        } else {
            let last = try await store.lastOpenTime(table: table, symbol: unit.symbol)
            plan = settings.planner.plan(interval: interval, lastStored: last, now: clock.now())
        }
        outcome.plan = plan
        if let written = attempt.resumeAfter { plan.start = max(plan.start, written + 1) }
        progress?.planned(unit, candles: plan.plannedCandles(interval))
        defer { progress?.finished(unit) }
        let (store, table, symbol) = (store, table, unit.symbol)
        let writer = BatchWriter<Kline>(batchSize: settings.batchSize) { batch in
            let n = try await store.write(table: table, symbol: symbol, klines: batch)
            if n > 0 {
                RunMetrics.current?.add("binance_extractor.klines.written", Double(n), unit: "{kline}", description: "Klines written to MariaDB.",
                                        attributes: ["market": table.market.rawValue, "interval": table.interval.rawValue])
            }
            return n
        }
        let limit = min(settings.pageLimit ?? unit.market.mostKlinesPerWeightLimit, unit.market.maxKlinesLimit)

        var failure: (any Error)?
        do {
            try await fetch(plan: plan, limit: limit, into: writer, outcome: &outcome)
        } catch {
            failure = error
        }
        return try await complete(writer, failure: failure, outcome: outcome) { ($0.openTime, $0.openTime) }
    }

    private func fetch(plan: FetchPlan, limit: Int, into writer: BatchWriter<Kline>, outcome: inout Outcome) async throws {
        var cursor = plan.start
        while cursor <= plan.end {
            try Task.checkCancellation()
            let request = KlinesRequest(market: unit.market, symbol: unit.symbol, interval: interval,
                                        startTime: cursor, endTime: plan.end, limit: limit)
            let page = try await source.klines(request)
            outcome.requests += 1
            let now = clock.now()
            var closed: [Kline] = []
            closed.reserveCapacity(page.count)
            var reachedOpen = false
            var failure: (any Error)?
            for kline in page {
                // Binance returns klines with open time in [startTime, endTime], ascending; anything else means the
                // page cannot be trusted.
                guard kline.openTime >= cursor, kline.openTime <= plan.end,
                      closed.last.map({ $0.openTime < kline.openTime }) ?? true else {
                    failure = BinanceError.malformedBody(
                        "kline at \(kline.openTime) is outside the requested range or out of order (startTime \(cursor))")
                    break
                }
                do {
                    try kline.validate(interval: interval)
                } catch {
                    failure = BinanceError.invalidKline(error)
                    break
                }
                if kline.isOpen(at: now) {
                    // Never store the still-open candle as if it were final; a later run stores it once closed.
                    reachedOpen = true
                    outcome.skippedOpenCandle = true
                    break
                }
                closed.append(kline)
            }
            if !closed.isEmpty {
                outcome.fetched += closed.count
                RunMetrics.current?.add("binance_extractor.klines.fetched", Double(closed.count), unit: "{kline}",
                                        description: "Closed, checked klines fetched from Binance.",
                                        attributes: ["market": unit.market.rawValue, "interval": interval.rawValue])
                try await writer.append(closed)
                progress?.advanced(unit, candles: closed.count)
            }
            if let failure { throw failure }
            // A short page means Binance has nothing more in range; an open candle is always the newest.
            if reachedOpen || page.count < limit { return }
            cursor = page.last!.openTime + 1
        }
    }
}

/// Ends a unit's run: whatever happened, what was fetched and checked is written (unless the write itself failed);
/// then a cancellation makes the outcome "interrupted", any other failure becomes a `UnitFailure` carrying what was
/// done, and success returns the outcome. `keys` gives a row's time and resume key (see `Outcome.resumeAfter`).
func complete<Row: Sendable>(_ writer: BatchWriter<Row>, failure: (any Error)?, outcome: SymbolExtractor.Outcome,
                             keys: (Row) -> (time: Int64, key: Int64)) async throws -> SymbolExtractor.Outcome {
    var outcome = outcome
    var failure = failure
    do {
        try await writer.finish()
    } catch {
        if failure == nil || failure is CancellationError { failure = error }
    }
    outcome.written = await writer.written
    if let first = await writer.firstFlushed { outcome.firstOpenTime = keys(first).time }
    if let last = await writer.lastFlushed { (outcome.lastOpenTime, outcome.resumeAfter) = keys(last) }
    guard let failure else { return outcome }
    if failure is CancellationError {
        outcome.interrupted = true
        return outcome
    }
    throw UnitFailure(underlying: failure, partial: outcome)
}

/// A unit that failed, with what it had done before.
public struct UnitFailure: Error, CustomStringConvertible {
    public let underlying: any Error
    public let partial: SymbolExtractor.Outcome
    public var description: String { "\(underlying)" }
}
