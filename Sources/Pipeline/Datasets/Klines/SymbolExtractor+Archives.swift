import BinanceAPI
import BinanceArchive
import Logging
import StoreKit
import Telemetry

/// A kline unit's files (`--source auto|archive`), walked by the unit runner (`ArchiveWalk`): whole closed months and
/// days from files, the rest (and what a file lacks) from REST.
extension SymbolExtractor: ArchivedWork {
    public nonisolated var archives: ArchiveUse {
        ArchiveUse(mode: settings.sourceMode, source: settings.archive, listOnly: settings.listArchiveFiles)
    }

    public nonisolated var archiveLogger: Logger {
        var logger = logger
        logger[metadataKey: "unit"] = "\(unit)"
        return logger
    }

    public nonisolated var rowsName: String { "candles" }

    public nonisolated var grid: Int64? { interval.fixedMilliseconds ?? interval.nominalMilliseconds }

    public func segments(_ plan: inout KlinePlan, outcome: inout UnitOutcome) async throws -> (segments: [ArchiveSegment], range: ClosedRange<Int64>)? {
        outcome.caughtUp = true
        if plan.range.origin == .listing && plan.range.start == 0 {
            // From listing: the first candle (Binance answers `startTime=0` with it) says where the files start.
            let request = KlinesRequest(market: unit.market, symbol: unit.symbol, interval: interval, startTime: 0, endTime: plan.range.end,
                                        limit: 1, series: unit.series)
            let page = try await source.klines(request)
            outcome.requests += 1
            try Self.check(page, request: request, interval: interval, now: clock.now())
            guard let first = page.first else { return ([], plan.range.end...plan.range.end) }
            plan.range.start = first.openTime
        }
        let range = plan.range
        let segments = ArchivePlanner.segments(market: unit.market, symbol: unit.symbol, interval: interval, series: unit.series,
                                               start: range.start, end: range.end, now: clock.now())
        guard settings.sourceMode == .archive || segments.contains(where: { if case .file = $0 { true } else { false } }) else { return nil }
        return (segments, range.start...range.end)
    }

    public func fetchREST(_ plan: inout KlinePlan, into writer: BatchWriter<Kline>, outcome: inout UnitOutcome) async throws {
        try await fetch(plan: plan.range, into: writer, outcome: &outcome, previous: &plan.previous)
    }

    public func rest(_ from: Int64, _ to: Int64, _ plan: inout KlinePlan, into writer: BatchWriter<Kline>, outcome: inout UnitOutcome) async throws {
        var stretch = plan.range
        (stretch.start, stretch.end, stretch.candleBudget) = (from, to, nil)
        try await fetch(plan: stretch, into: writer, outcome: &outcome, previous: &plan.previous)
    }

    /// A dry run checks the REST ranges the files leave, as a dry run does.
    public func listed(_ from: Int64, _ to: Int64, _ plan: inout KlinePlan, into writer: BatchWriter<Kline>, outcome: inout UnitOutcome) async throws {
        try await rest(from, to, &plan, into: writer, outcome: &outcome)
    }

    public nonisolated func format(_ file: ArchiveFile, _ plan: KlinePlan) -> ArchiveRowFormat<Kline> {
        let (interval, series) = (interval, unit.series)
        return ArchiveRowFormat<Kline>(reader: { ArchiveCSV.klineRows(file: $0, series: series) }, key: \.openTime) { row in
            guard file.range.contains(row.openTime) else { return false }
            try row.validate(interval: interval, series: series)
            return true
        }
    }

    public func take(_ rows: [Kline], of file: ArchiveFile, _ plan: inout KlinePlan, into writer: BatchWriter<Kline>,
                     outcome: inout UnitOutcome) async throws {
        guard !rows.isEmpty else { return }
        // Every stretch between two candles this unit delivers was asked of REST (`--source auto`): a candle after the
        // next one expected means Binance has none in between, an outage or a halt, even where a file showed it first.
        if settings.sourceMode == .auto {
            for row in rows { noteOutage(before: row.openTime, previous: &plan.previous) }
        }
        RunPipelineMetrics.current.fetched(klines: rows.count, table: table, fromArchive: true)
        try await ArchiveWalk<Self>.append(rows, into: writer, outcome: &outcome)
        progress?.advanced(unit, candles: rows.count)
    }

    public func read(_ file: ArchiveFile, rows: Int, covered: inout Int64, _ plan: inout KlinePlan, outcome: inout UnitOutcome) async throws {
        progress?.readFile(unit, name: file.fileName, rows: rows)
    }

    public func unread(_ file: ArchiveFile, _ read: ArchiveRead, taken: Int, _ plan: inout KlinePlan, into writer: BatchWriter<Kline>,
                       outcome: inout UnitOutcome) async throws {
        guard case .refused = read, taken > 0 else { return }
        // Rows of the file were written before the fault showed (a CRC-32 checked at the entry's end): the period is
        // written again from REST, in batches of its own, and counted once.
        try await writer.finish()
        outcome.fetched -= taken
        outcome.fromArchive -= taken
        if settings.sourceMode == .auto { outcome.rewritten += taken }
    }

    /// The first candle at or after `from`, asked once while nothing of this unit has been seen (see `ArchivedWork`).
    public func firstTime(from: Int64, through end: Int64, _ plan: inout KlinePlan, outcome: inout UnitOutcome) async throws -> Int64?? {
        guard plan.previous == nil else { return nil }
        return .some(try await firstOpenTime(from: from, through: end, outcome: &outcome))
    }
}
