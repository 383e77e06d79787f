import BinanceAPI
import Clocks
import Logging
import StoreKit
import Telemetry
import Tracing

/// Keeps one kline unit's table current from its stream (a `LongRunningUnit`): at start and whenever a (new)
/// connection carries its stream, it catches up from the last stored row through the same `SymbolExtractor` the jobs
/// use (REST, or the archives when far behind) while the stream's events queue in its inbox; then it writes each
/// closed candle as its final event arrives, fetches from REST what the stream lost, and has REST confirm (and
/// correct) every candle it wrote from the stream (`KlineFollowState`). The open candle is never written.
public struct KlineFollower: LongRunningUnit {
    public struct Settings: Sendable {
        public var missingAfter: Int64 = 3_000
        public var confirmAfter: Int64 = 10_000
        /// Shared by the process's followers: how many catch up at once (nil: no limit).
        public var gate: CatchUpGate?
        /// The catch-up's settings (source mode, archives, batch size); its planner resumes from the last stored row.
        public var catchUp = SymbolExtractor.Settings()
        public init() {}
    }

    public let unit: ExtractionUnit
    let inbox: FollowInbox
    let source: any KlineSource
    /// Every write goes through the followers' shared writer (group commit across units).
    let writer: FollowWriter
    var store: any KlineStoring { writer.store }
    let clock: any WallClock
    let settings: Settings
    let logger: Logger
    let monitor: FollowMonitor?
    /// The unit's name for the monitor: its stream's.
    let name: String

    public init(unit: ExtractionUnit, inbox: FollowInbox, source: any KlineSource, writer: FollowWriter, clock: any WallClock,
                settings: Settings, logger: Logger, monitor: FollowMonitor? = nil) {
        precondition(unit.interval != nil, "KlineFollower follows klines")
        self.unit = unit
        self.inbox = inbox
        self.source = source
        self.writer = writer
        self.clock = clock
        self.settings = settings
        self.logger = logger
        self.monitor = monitor
        name = MarketStream.kline(unit.symbol, unit.interval!).name
    }

    var table: KlineTable { unit.table! }
    var interval: KlineInterval { unit.interval! }

    public func run(_ attempt: UnitAttempt) async throws -> UnitOutcome {
        var outcome = UnitOutcome()
        var state = KlineFollowState(interval: interval, stored: nil, missingAfter: settings.missingAfter, confirmAfter: settings.confirmAfter)
        // When the last catch-up ended: a connection made before that was already buffering while it ran, so it needs
        // no catch-up of its own (a process starting 1,000 units spends one each, not two); what little may lie between
        // the catch-up's last page and the first buffered event is a hole the unit fills from REST when it shows.
        var caughtUpAt = Int64.min
        do {
            try await catchUp(&state, outcome: &outcome)
            caughtUpAt = clock.now()
            while let input = await inbox.next() {
                switch input {
                case .connected(let at):
                    guard at > caughtUpAt else {
                        monitor?.caughtUp(name)
                        continue
                    }
                    try await catchUp(&state, outcome: &outcome)
                    caughtUpAt = clock.now()
                case .kline(let kline, let final, let arrived):
                    for action in state.receive(kline, final: final, now: arrived) {
                        try await perform(action, arrived: arrived, &state, outcome: &outcome)
                    }
                case .tick(let now):
                    if let range = state.confirmationDue(now: now) { try await confirm(range, &state, outcome: &outcome) }
                case .trade:
                    continue  // a kline unit's stream carries klines
                }
            }
        } catch {
            outcome.missedFinals += state.missedFinals
            if error is CancellationError || Task.isCancelled {
                outcome.interrupted = true
                return outcome
            }
            throw UnitFailure(underlying: error, partial: outcome)
        }
        outcome.missedFinals += state.missedFinals
        outcome.interrupted = true
        return outcome
    }

    /// Everything closed since the last stored row, through the jobs' extractor, until it has caught up.
    private func catchUp(_ state: inout KlineFollowState, outcome: inout UnitOutcome) async throws {
        let extractor = SymbolExtractor(unit: unit, source: source, store: store, clock: clock, settings: settings.catchUp, logger: logger)
        let unit = unit
        let (store, table) = (store, table)
        let (part, last) = try await followCatchUp(unit, gate: settings.gate, attempt: { try await extractor.run(.first) },
                                                   position: { try await store.lastOpenTime(table: table, symbol: unit.symbol) })
        outcome.absorb(part)
        state.caughtUp(through: last)
        outcome.caughtUp = true
        monitor?.caughtUp(name)
    }

    private func perform(_ action: KlineFollowState.Action, arrived: Int64, _ state: inout KlineFollowState, outcome: inout UnitOutcome) async throws {
        switch action {
        case .write(let kline):
            let n = try await writer.write(table: table, symbol: unit.symbol, klines: [kline])
            let lag = clock.now() - arrived
            monitor?.committed(lag: lag)
            RunPipelineMetrics.current.committedFromStream(lagSeconds: Double(lag) / 1000, table: table)
            state.wrote(kline)
            outcome.written += n
            outcome.fromStream += 1
            outcome.lastTime = max(outcome.lastTime ?? kline.openTime, kline.openTime)
            RunPipelineMetrics.current.written(klines: n, table: table)
        case .fetch(let from, let through):
            logger.info("final event missing; the candles come from REST", metadata: [
                "unit": "\(unit)", "from": "\(UTCCalendar.iso8601(from))", "through": "\(UTCCalendar.iso8601(through))",
            ])
            let rows = try await pages(from, through, outcome: &outcome)
            if !rows.isEmpty {
                outcome.written += try await writer.write(table: table, symbol: unit.symbol, klines: rows)
                outcome.lastTime = max(outcome.lastTime ?? through, rows.last!.openTime)
            }
            state.fetched(from: from, through: through, newest: rows.last?.openTime)
        }
    }

    /// REST confirms what the stream wrote: one request for every candle unconfirmed so far; what differs is
    /// written again with REST's values, and counted.
    private func confirm(_ range: ClosedRange<Int64>, _ state: inout KlineFollowState, outcome: inout UnitOutcome) async throws {
        let rows = try await pages(range.lowerBound, range.upperBound, outcome: &outcome)
        let (corrections, confirmed) = state.confirm(range, rest: rows)
        outcome.confirmed += confirmed
        guard !corrections.isEmpty else { return }
        try await withSpan("follow correction", ofKind: .internal) { span in
            span.attributes["binance_extractor.unit"] = "\(unit)"
            span.attributes["binance_extractor.corrected"] = Int64(corrections.count)
            _ = try await writer.write(table: table, symbol: unit.symbol, klines: corrections)
        }
        outcome.corrected += corrections.count
        monitor?.corrected(corrections.count)
        logger.warning("REST's candles differ from the stream's; written with REST's values", metadata: [
            "unit": "\(unit)", "candles": "\(corrections.count)", "first": "\(UTCCalendar.iso8601(corrections[0].openTime))",
        ])
    }

    /// Closed candles `[from, through]` from REST, checked as the jobs check them, page by page.
    /// `rest` in a child task (its frames freed when it ends); counts the requests.
    /// `rest` in a child task (its frames freed when it ends), through the gate: when every unit's candle closes at
    /// once (a 30m close is also a 15m, 5m, 3m and 1m close), a thousand confirmations queue for a few slots instead of
    /// a thousand requests and their buffers being held at once. They are due within 30 s and take a few here.
    private func pages(_ from: Int64, _ through: Int64, outcome: inout UnitOutcome) async throws -> [Kline] {
        let fetch: @Sendable () async throws -> ([Kline], Int) = { [self] in
            var counted = UnitOutcome()
            let rows = try await rest(from, through, outcome: &counted)
            return (rows, counted.requests)
        }
        let gate = settings.gate
        let (rows, requests) = try await inChildTask { if let gate { try await gate.run(fetch) } else { try await fetch() } }
        outcome.requests += requests
        return rows
    }

    private func rest(_ from: Int64, _ through: Int64, outcome: inout UnitOutcome) async throws -> [Kline] {
        var rows: [Kline] = []
        var cursor = from
        let limit = unit.market.maxKlinesLimit
        while cursor <= through {
            let count = Int(min(Int64(limit), interval.count(from: cursor, to: through)))
            let request = KlinesRequest(market: unit.market, symbol: unit.symbol, interval: interval, startTime: cursor, endTime: through,
                                        limit: max(count, 1), series: unit.series)
            let page = try await source.klines(request)
            outcome.requests += 1
            let now = clock.now()
            try SymbolExtractor.check(page, request: request, interval: interval, now: now)
            let closed = page.filter { !$0.isOpen(at: now) }
            rows += closed
            guard let last = page.last, page.count >= request.limit else { break }
            cursor = interval.nextOpenTime(after: last.openTime)
        }
        return rows
    }
}
