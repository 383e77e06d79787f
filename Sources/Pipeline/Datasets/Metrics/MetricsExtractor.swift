import BinanceAPI
import BinanceArchive
import Clocks
import Logging
import StoreKit
import Telemetry
import Tracing

/// Fills one symbol's `futures_metrics` (open interest and trader ratios, every 5 minutes) over a range: whole closed
/// days from the archives' daily `metrics` files, the rest from the five `/futures/data/*` endpoints, which answer
/// only the last 30 days (`FuturesMetrics`). What neither has (a day with no file, older than REST keeps) is counted
/// as lacked and said in the log; `gaps --metrics` finds those holes again later, and records what Binance confirms
/// it does not have.
///
/// A range is where the unit resumes (its newest stored row, re-reading an hour), `LOOKBACK_HOURS` back when nothing
/// is stored, or `--start`/`--end`; a gap filler gives one hole.
public struct MetricsExtractor: UnitWork {
    public let unit: ExtractionUnit
    let client: any MetricsSource
    let store: any MetricsStoring
    let clock: any WallClock
    let lookbackMilliseconds: Int64
    let explicitRange: ClosedRange<Int64>?
    public let batchSize: Int
    let sourceMode: SourceMode
    let archive: (any ArchiveSource)?
    /// `--dry-run`: files are listed, not read (the store, a `DryRunStore`, writes nothing).
    let dryRun: Bool
    let logger: Logger
    /// Where the unit records the files it read and its rows' sources (nil: nowhere).
    public var recordsTo: Ledger?

    public var ledger: UnitLedger? {
        recordsTo.map { UnitLedger(ledger: $0, table: MetricsTable.name, symbol: unit.symbol.name, clock: clock) }
    }

    public init(unit: ExtractionUnit, client: any MetricsSource, store: any MetricsStoring, clock: any WallClock, lookbackMilliseconds: Int64,
                explicitRange: ClosedRange<Int64>?, batchSize: Int, sourceMode: SourceMode, archive: (any ArchiveSource)?, dryRun: Bool,
                logger: Logger) {
        self.unit = unit
        self.client = client
        self.store = store
        self.clock = clock
        self.lookbackMilliseconds = lookbackMilliseconds
        self.explicitRange = explicitRange
        self.batchSize = batchSize
        self.sourceMode = sourceMode
        self.archive = archive
        self.dryRun = dryRun
        self.logger = logger
    }

    static let step = FuturesMetrics.periodMilliseconds

    /// Runs one attempt; a retry keeps the first attempt's range and starts after the last row it wrote.
    public func run(_ attempt: UnitAttempt = .first) async throws -> UnitOutcome {
        let outcome = try await UnitRunner.run(self, attempt)
        if outcome.archiveLacked > 0 && !outcome.archiveOnly {
            logger.warning("metrics older than REST's 30 days whose daily file Binance has not published; `gaps --metrics` asks for them again",
                           metadata: ["unit": "\(unit)", "rows": "\(outcome.archiveLacked)", "files": "\(outcome.unreadFiles)"])
        }
        return outcome
    }

    public func plan(_ attempt: UnitAttempt, outcome: inout UnitOutcome) async throws -> FetchPlan? {
        let step = Self.step
        if let previous = attempt.previous.plan {
            outcome.plan = previous
            outcome.storedBefore = attempt.previous.storedBefore
        } else {
            let now = clock.now()
            let last = try await store.lastMetricTime(symbol: unit.symbol)
            outcome.storedBefore = last
            // Resuming re-reads an hour: a row stored while one of the five endpoints had not answered for it yet is
            // completed.
            let start = explicitRange?.lowerBound ?? last.map { $0 - 3_600_000 } ?? (now - lookbackMilliseconds)
            let end = explicitRange?.upperBound ?? now
            outcome.plan = FetchPlan(start: (start + step - 1) / step * step, end: end / step * step,
                                     origin: explicitRange != nil ? .explicit : last != nil ? .resume : .lookback)
        }
        outcome.caughtUp = true
        guard var plan = outcome.plan else { return nil }
        if let written = attempt.resumeAfter { plan.start = max(plan.start, written + step) }
        return plan.end >= plan.start ? plan : nil
    }

    public func write(_ batch: [FuturesMetric]) async throws -> Int {
        let n = try await store.write(symbol: unit.symbol, rows: batch)
        RunPipelineMetrics.current.written(metricRows: n)
        return n
    }

    public static func keys(_ row: FuturesMetric) -> (time: Int64, key: Int64) { (row.time, row.time) }
}

/// A metrics unit's daily files, walked by the unit runner (`ArchiveWalk`).
extension MetricsExtractor: ArchivedWork {
    public var archives: ArchiveUse { ArchiveUse(mode: sourceMode, source: archive, listOnly: dryRun) }

    public var archiveLogger: Logger {
        var logger = logger
        logger[metadataKey: "unit"] = "\(unit)"
        return logger
    }

    public var grid: Int64? { Self.step }

    /// Whole closed days from their files, the rest from REST. REST keeps the last 30 days only: every closed day of a
    /// REST stretch older than that is read from its daily file, whole, even where the range takes part of it (the
    /// rows outside the range are dropped). Files cover whole days, so REST starts after the last such day and nothing
    /// is fetched twice.
    public func segments(_ plan: inout FetchPlan, outcome: inout UnitOutcome) async throws -> (segments: [ArchiveSegment], range: ClosedRange<Int64>)? {
        let now = clock.now()
        let segments = ArchivePlanner.segments(market: .futures, symbol: unit.symbol, dataset: .metrics, step: Self.step, start: plan.start,
                                               end: plan.end, now: now, monthly: false)
        let day: Int64 = 86_400_000
        let floor = FuturesMetrics.restFloor(now: now)
        let today = Int64.floorDivide(now, day) * day
        var out: [ArchiveSegment] = []
        for segment in segments {
            guard case .rest(let start, let end) = segment, start < floor else {
                out.append(segment)
                continue
            }
            var cursor = start
            var first = Int64.floorDivide(start, day) * day
            while first < floor && first + day <= today && first <= end {
                let (y, m, d) = UTCCalendar.civil(first)
                out.append(.file(ArchiveFile(market: .futures, dataset: .metrics, symbol: unit.symbol, period: .day(year: y, month: m, day: d))))
                first += day
                cursor = first
            }
            if cursor <= end { out.append(.rest(start: cursor, end: end)) }
        }
        return (out, plan.start...plan.end)
    }

    public func fetchREST(_ plan: inout FetchPlan, into writer: BatchWriter<FuturesMetric>, outcome: inout UnitOutcome) async throws {
        try await rest(plan.start, plan.end, &plan, into: writer, outcome: &outcome)
    }

    /// A dry run asks REST for what the files leave, as a dry run does.
    public func listed(_ from: Int64, _ to: Int64, _ plan: inout FetchPlan, into writer: BatchWriter<FuturesMetric>,
                       outcome: inout UnitOutcome) async throws {
        try await rest(from, to, &plan, into: writer, outcome: &outcome)
    }

    public func format(_ file: ArchiveFile, _ plan: FetchPlan) -> ArchiveRowFormat<FuturesMetric> {
        let step = Self.step
        return ArchiveRowFormat<FuturesMetric>(reader: { [symbol = unit.symbol] in ArchiveCSV.metricsRows(file: $0, symbol: symbol) }, key: \.time) { row in
            guard row.time % step == 0 else {
                throw ArchiveCSV.Invalid(file: file.fileName, line: 0, reason: "a row at \(UTCCalendar.iso8601(row.time)) is off the 5-minute grid")
            }
            return file.range.contains(row.time)
        }
    }

    /// Times `[start, end]` from the five endpoints, in windows of at most `maxLimit` periods, never older than REST
    /// keeps (`FuturesMetrics.restFloor`); what lies before that is counted as lacked.
    public func rest(_ from: Int64, _ to: Int64, _ plan: inout FetchPlan, into writer: BatchWriter<FuturesMetric>,
                     outcome: inout UnitOutcome) async throws {
        let step = Self.step
        guard to >= from else { return }
        let floor = FuturesMetrics.restFloor(now: clock.now())
        if from < floor { outcome.lack((min(to + step, floor) - from + step - 1) / step, from: from, to: min(to, floor - 1)) }
        var cursor = max(from, floor)
        while cursor <= to {
            try Task.checkCancellation()
            let windowEnd = min(to, cursor + Int64(FuturesMetrics.maxLimit - 1) * step)
            var pages: [(FuturesMetrics.Endpoint, [(Int64, [DecimalString])])] = []
            do {
                for endpoint in FuturesMetrics.Endpoint.allCases {
                    pages.append((endpoint, try await client.metrics(endpoint, symbol: unit.symbol, startTime: cursor, endTime: windowEnd)))
                    outcome.requests += 1
                }
            } catch BinanceError.api(status: 400, let payload) where payload.code == BinanceErrorCode.invalidParameter
                        && payload.msg.localizedCaseInsensitiveContains("startTime") && cursor < clock.now() - FuturesMetrics.restHistoryMilliseconds + 86_400_000 {
                // Binance counts its 30 days a little differently from us (its clock, its day): the oldest hour it
                // refused is left to the files and `gaps --metrics`, and the window moves on.
                outcome.requests += 1
                logger.warning("Binance no longer keeps this hour of metrics on REST; it is counted as lacked",
                               metadata: ["unit": "\(unit)", "start": "\(UTCCalendar.iso8601(cursor))"])
                let next = min(to + step, cursor + 3_600_000)
                outcome.archiveLacked += (next - cursor) / step
                cursor = next
                continue
            }
            let rows = FuturesMetrics.merge(pages)
            if !rows.isEmpty {
                outcome.fetched += rows.count
                try await writer.append(rows)
            }
            cursor = windowEnd + step
        }
    }
}
