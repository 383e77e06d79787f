import BinanceAPI
import BinanceArchive
import Clocks
import Logging
import Storage
import Telemetry
import Tracing

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
        /// `--source`: REST only, or the archives for whole closed months and days (see `ArchivePlanner`).
        public var sourceMode: KlinesSourceMode
        public var archive: (any ArchiveSource)?
        /// `--dry-run`: files are not downloaded, only asked for their size (HEAD); the plan is in the outcome.
        public var listArchiveFiles: Bool

        public init(planner: RangePlanner = RangePlanner(), pageLimit: Int? = nil, batchSize: Int = 2000,
                    sourceMode: KlinesSourceMode = .rest, archive: (any ArchiveSource)? = nil, listArchiveFiles: Bool = false) {
            self.planner = planner
            self.pageLimit = pageLimit
            self.batchSize = batchSize
            self.sourceMode = sourceMode
            self.archive = archive
            self.listArchiveFiles = listArchiveFiles
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
        /// Klines: true when the unit reached the newest closed candle Binance has (or the end of its range), false
        /// when the catch-up cap stopped it first; nil for datasets that do not say.
        public var caughtUp: Bool?
        /// The newest open time stored before the run (nil: nothing was), to tell whether the run moved the unit.
        public var storedBefore: Int64?
        /// Klines that came from archive files (the rest of `fetched` came from REST), and files read.
        public var fromArchive = 0
        public var archiveFiles = 0
        /// `--source archive`: candles of the range no file held (not fetched from REST).
        public var archiveLacked: Int64 = 0
        /// The first and last time (open time, trade time) of what no file held, for the message that names it.
        public var lackedSpan: ClosedRange<Int64>?
        /// `--source archive`: the run may take nothing from REST, so what the files did not give fails the unit.
        public var archiveOnly = false
        /// Files the run could not use, each with the reason (at most `maxNamedFiles`; `unreadFileCount` counts all).
        public var unreadFiles: [String] = []
        public var unreadFileCount = 0
        /// The archive host could not be reached during the run: nothing the run found missing may be confirmed.
        public var archiveUnreachable = false
        /// Rows written twice: those of a file refused after some of its rows were written (a CRC-32 failure found at
        /// its end), written again from REST. `written` counts each row once.
        public var rewritten = 0
        /// `--dry-run` with archives: the files the run would read (with their size from a HEAD request, when the
        /// host gives one) and the open-time ranges `[from, to]` left to REST.
        public var plannedFiles: [PlannedFile] = []
        public var restRanges: [RESTRange] = []
        /// The run was cancelled; what was fetched was written.
        public var interrupted = false

        public init() {}

        /// Neither moved the unit's newest stored row nor reached Binance's newest: the unit is stuck.
        public var stalled: Bool {
            guard caughtUp == false else { return false }
            guard let last = lastOpenTime else { return true }
            return storedBefore.map { last <= $0 } ?? false
        }

        static let maxNamedFiles = 8

        static func union(_ a: ClosedRange<Int64>?, _ b: ClosedRange<Int64>?) -> ClosedRange<Int64>? {
            guard let a else { return b }
            guard let b else { return a }
            return min(a.lowerBound, b.lowerBound)...max(a.upperBound, b.upperBound)
        }

        /// `--source archive`: `count` rows of `[from, to]` that no file held.
        public mutating func lack(_ count: Int64, from: Int64, to: Int64) {
            guard count > 0 else { return }
            archiveLacked += count
            lackedSpan = Self.union(lackedSpan, from...max(from, to))
        }

        /// A file the run could not use (not published, unreachable, refused), for the message and the summary.
        public mutating func unread(_ file: ArchiveFile, _ read: ArchiveRead) {
            let reason: String
            switch read {
            case .rows: return
            case .absent: reason = "not published (404)"
            case .unreachable: reason = "archive host unreachable"; archiveUnreachable = true
            case .refused(let why): reason = "refused: \(why)"
            }
            unreadFileCount += 1
            if unreadFiles.count < Self.maxNamedFiles { unreadFiles.append("\(file.fileName): \(reason)") }
        }

        /// `--source archive`: times `[from, to]` that no file covers (today, a part of a day), rows uncounted.
        public mutating func uncovered(from: Int64, to: Int64) {
            guard to >= from else { return }
            unreadFileCount += 1
            if unreadFiles.count < Self.maxNamedFiles {
                unreadFiles.append("\(UTCCalendar.iso8601(from)) .. \(UTCCalendar.iso8601(to)): no file covers it yet")
            }
        }

        /// Notes `[from, to]` as left to REST (a dry run's plan), joined to the range before when they touch.
        mutating func addRESTRange(from: Int64, to: Int64, step: Int64) {
            if let previous = restRanges.last, previous.to + step == from {
                restRanges[restRanges.count - 1].to = to
            } else {
                restRanges.append(RESTRange(from: from, to: to))
            }
        }

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
            caughtUp = other.caughtUp ?? caughtUp
            fromArchive += other.fromArchive
            archiveFiles += other.archiveFiles
            archiveLacked += other.archiveLacked
            lackedSpan = Self.union(lackedSpan, other.lackedSpan)
            archiveOnly = archiveOnly || other.archiveOnly
            unreadFiles = Array((unreadFiles + other.unreadFiles).prefix(Self.maxNamedFiles))
            unreadFileCount += other.unreadFileCount
            archiveUnreachable = archiveUnreachable || other.archiveUnreachable
            rewritten += other.rewritten
            plannedFiles += other.plannedFiles
            restRanges += other.restRanges
            storedBefore = storedBefore ?? other.storedBefore
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
        defer { progress?.finished(unit) }
        let (store, table, symbol) = (store, table, unit.symbol)
        let writer = BatchWriter<Kline>(batchSize: settings.batchSize) { batch in
            let n = try await store.write(table: table, symbol: symbol, klines: batch)
            if n > 0 {
                RunMetrics.current?.add("binance_extractor.klines.written", Double(n), unit: "{kline}", description: "Klines written to the database.",
                                        attributes: ["market": table.market.rawValue, "interval": table.interval.rawValue, "series": table.series.rawValue])
            }
            return n
        }
        let limit = min(settings.pageLimit ?? unit.market.mostKlinesPerWeightLimit, unit.market.maxKlinesLimit)

        var failure: (any Error)?
        var outages: [KlineHole] = []
        // The open time of the newest candle Binance has shown this unit (see `fetch`).
        var previous = attempt.resumeAfter
        outcome.archiveOnly = settings.sourceMode == .archive && settings.archive != nil
        do {
            if plan.origin == .listing && plan.start == 0 && unit.market.klinesAnswerNewestFirst {
                // `startTime=0` finds nothing where the newest candles of a window come first: find the first one.
                if let first = try await firstOpenTime(from: Self.coinmLaunch, through: plan.end, outcome: &outcome) {
                    plan.start = first
                } else {
                    plan.start = plan.end + 1
                }
            }
            if plan.end < plan.start {
                outcome.caughtUp = true
            } else if settings.sourceMode != .rest, let archive = settings.archive {
                try await fetchWithArchives(archive, plan: plan, limit: limit, into: writer, outcome: &outcome, outages: &outages,
                                            previous: &previous)
            } else {
                try await fetch(plan: plan, limit: limit, into: writer, outcome: &outcome, outages: &outages, previous: &previous)
            }
        } catch {
            failure = error
        }
        do {
            outcome = try await complete(writer, failure: failure, outcome: outcome) { ($0.openTime, $0.openTime) }
        } catch let failure as UnitFailure {
            try? await record(outages, upTo: failure.partial.lastOpenTime)
            throw failure
        }
        try await record(outages, upTo: outcome.lastOpenTime)
        return outcome
    }

    /// Records the silences Binance confirmed between candles that are now stored, so `gaps` does not ask again.
    private func record(_ outages: [KlineHole], upTo stored: Int64?) async throws {
        guard let stored else { return }
        let confirmed = outages.filter { $0.to < stored }
        guard !confirmed.isEmpty else { return }
        try await store.recordOutages(table: table, holes: confirmed)
        logger.info("Binance has no candles between stored ones (an outage or a halt); recorded as confirmed", metadata: [
            "unit": "\(unit)", "outages": "\(confirmed.map(\.description))",
        ])
    }

    /// `--source auto|archive`: the range's whole closed months and days from files (a month without its monthly
    /// file from its daily files), the rest from REST; after each file, what it lacked (an incomplete file, binance-
    /// public-data #436) from REST too, so a file never leaves a hole. With `archive`, nothing comes from REST: what
    /// the files lacked is counted and reported.
    private func fetchWithArchives(_ archive: any ArchiveSource, plan given: FetchPlan, limit: Int, into writer: BatchWriter<Kline>,
                                   outcome: inout Outcome, outages: inout [KlineHole], previous: inout Int64?) async throws {
        var adjusted = given
        if adjusted.origin == .listing && adjusted.start == 0 {
            // From listing: the first candle (Binance answers `startTime=0` with it) says where the files start.
            let request = KlinesRequest(market: unit.market, symbol: unit.symbol, interval: interval, startTime: 0, endTime: adjusted.end, limit: 1,
                                        series: unit.series)
            let page = try await source.klines(request)
            outcome.requests += 1
            try Self.check(page, request: request, interval: interval, now: clock.now())
            guard let first = page.first else {
                outcome.caughtUp = true
                return
            }
            adjusted.start = first.openTime
        }
        let plan = adjusted
        let segments = ArchivePlanner.segments(market: unit.market, symbol: unit.symbol, interval: interval, series: unit.series,
                                               start: plan.start, end: plan.end, now: clock.now())
        guard settings.sourceMode == .archive || segments.contains(where: { if case .file = $0 { true } else { false } }) else {
            return try await fetch(plan: plan, limit: limit, into: writer, outcome: &outcome, outages: &outages, previous: &previous)
        }
        // Every stretch between two candles this unit delivers was asked of REST (`--source auto`): a candle after the
        // next one expected means Binance has none in between, an outage or a halt, even where a file showed it first.
        let confirmsOutages = settings.sourceMode == .auto
        let step = interval.fixedMilliseconds ?? interval.nominalMilliseconds
        // One REST range `[start, end]` (open times), or its count in archive-only mode.
        func rest(_ start: Int64, _ end: Int64, outcome: inout Outcome) async throws {
            let from = max(start, plan.start), to = min(end, plan.end)
            guard to >= from else { return }
            if settings.listArchiveFiles { outcome.addRESTRange(from: from, to: to, step: step) }
            if settings.sourceMode == .archive {
                if !settings.listArchiveFiles { outcome.lack((to - from) / step + 1, from: from, to: to) }
                return
            }
            var sub = plan
            (sub.start, sub.end, sub.candleBudget) = (from, to, nil)
            try await fetch(plan: sub, limit: limit, into: writer, outcome: &outcome, outages: &outages, previous: &previous)
        }
        var queue = segments[...]
        var pending: [ArchiveSegment] = []
        // A backfill from a date may start long before the symbol was listed: at the first file that is not there while
        // nothing has been seen yet, the first candle is asked for once (one request), and what lies before it is skipped,
        // instead of a 404 per month and day and a REST request per day (a symbol listed last week, asked from last year).
        var listing = ListingProbe()
        // A file not there (yet): a month's daily files may be (monthly files appear some days into the next month);
        // a day's candles come from REST.
        func probe(_ file: ArchiveFile, listing: inout ListingProbe, outcome: inout Outcome) async throws {
            guard !listing.probed && previous == nil && outcome.fetched == 0 && !settings.listArchiveFiles else { return }
            listing.probed = true
            listing.first = try await firstOpenTime(from: max(file.range.lowerBound, plan.start), through: plan.end, outcome: &outcome) ?? (plan.end + 1)
        }
        func notPublished(_ file: ArchiveFile, pending: inout [ArchiveSegment], listing: inout ListingProbe, outcome: inout Outcome) async throws {
            try await probe(file, listing: &listing, outcome: &outcome)
            if let first = listing.first, file.range.upperBound <= first { return }
            if case .month = file.period {
                pending = ArchivePlanner.days(of: file).map { .file($0) } + pending
            } else {
                if !settings.listArchiveFiles { outcome.unread(file, .absent) }
                try await rest(file.range.lowerBound, file.range.upperBound - step, outcome: &outcome)
            }
        }
        while let segment = pending.isEmpty ? queue.popFirst() : pending.removeFirst() {
            try Task.checkCancellation()
            switch segment {
            case .rest(let start, let end):
                try await rest(max(start, listing.first ?? start), end, outcome: &outcome)
            case .file(let file) where listing.first.map({ file.range.upperBound <= $0 }) ?? false:
                continue  // before the symbol's first candle: no file, no REST
            case .file(let file) where settings.listArchiveFiles:
                // A dry run reads no file: it asks each for its size, and lists it.
                let last = file.range.upperBound - step
                switch await archive.size(of: file) {
                case .bytes(let size):
                    outcome.plannedFiles.append(PlannedFile(name: file.fileName, path: file.path, bytes: size))
                case .absent:
                    try await notPublished(file, pending: &pending, listing: &listing, outcome: &outcome)
                case .unreachable:
                    outcome.archiveUnreachable = true
                    try await rest(file.range.lowerBound, last, outcome: &outcome)
                }
            case .file(let file):
                let last = file.range.upperBound - step
                // The next open time the stream has not covered: a row after it means the file lacks the candles
                // between (an incomplete file, binance-public-data #436), which REST fills before the row is written,
                // so the writes stay in time order and a retry resumes exactly where the writes stopped.
                var expected = max(file.range.lowerBound, plan.start)
                let (interval, series) = (interval, unit.series)
                let format = ArchiveRowFormat<Kline>(reader: { ArchiveCSV.klineRows(file: $0, series: series) }, key: \.openTime) { row in
                    guard file.range.contains(row.openTime) else { return false }
                    try row.validate(interval: interval, series: series)
                    return true
                }
                var takenFromFile = 0
                func take(_ rows: [Kline], outcome: inout Outcome) async throws {
                    guard !rows.isEmpty else { return }
                    if confirmsOutages {
                        for row in rows {
                            if let p = previous, row.openTime > interval.nextOpenTime(after: p) {
                                let from = interval.nextOpenTime(after: p), to = interval.openTime(containing: row.openTime - 1)
                                outages.append(KlineHole(symbol: unit.symbol.name, from: from, to: to, missing: interval.count(from: from, to: to)))
                            }
                            previous = max(previous ?? row.openTime, row.openTime)
                        }
                    }
                    takenFromFile += rows.count
                    outcome.fetched += rows.count
                    outcome.fromArchive += rows.count
                    RunMetrics.current?.add("binance_extractor.klines.fetched", Double(rows.count), unit: "{kline}",
                                            description: "Closed, checked klines fetched from Binance.",
                                            attributes: ["market": unit.market.rawValue, "interval": interval.rawValue, "series": unit.series.rawValue,
                                                         "source": "archive"])
                    try await writer.append(rows)
                    progress?.advanced(unit, candles: rows.count)
                }
                // One span per file (download, CHECKSUM, unzip, parse, write), named by kind, the file in its attributes.
                let read = try await withSpan("read archive file", ofKind: .client) { span -> ArchiveRead in
                    span.attributes["binance.archive.file"] = file.fileName
                    span.attributes["binance.archive.path"] = file.path
                    let result = try await archive.read(file, format: format) { rows in
                        var pending: [Kline] = []
                        pending.reserveCapacity(rows.count)
                        for row in rows where row.openTime >= plan.start && row.openTime <= plan.end {
                            if row.openTime > expected {
                                try await take(pending, outcome: &outcome)
                                pending.removeAll(keepingCapacity: true)
                                try await rest(expected, row.openTime - step, outcome: &outcome)
                            }
                            expected = max(expected, row.openTime + step)
                            pending.append(row)
                        }
                        try await take(pending, outcome: &outcome)
                    }
                    span.attributes["binance.archive.result"] = result.label
                    switch result {
                    case .rows(let count): span.attributes["binance.archive.rows"] = Int64(count)
                    case .refused(let reason): span.setStatus(SpanStatus(code: .error, message: reason))
                    case .absent, .unreachable: break
                    }
                    return result
                }
                switch read {
                case .rows(let count):
                    outcome.archiveFiles += 1
                    progress?.readFile(unit, name: file.fileName, rows: count)
                    // An empty file before anything was seen: the same search for the first candle as a missing one.
                    if count == 0 {
                        try await probe(file, listing: &listing, outcome: &outcome)
                        if let first = listing.first { expected = max(expected, first) }
                    }
                    // What the file lacks at its end, from REST.
                    if expected <= min(last, plan.end) { try await rest(expected, last, outcome: &outcome) }
                case .absent:
                    try await notPublished(file, pending: &pending, listing: &listing, outcome: &outcome)
                case .unreachable:
                    outcome.unread(file, read)
                    try await rest(file.range.lowerBound, last, outcome: &outcome)
                case .refused(let reason):
                    outcome.unread(file, read)
                    if takenFromFile > 0 {
                        // Rows of the file were written before the fault showed (a CRC-32 checked at the entry's end): the
                        // period is written again from REST, in batches of its own, and counted once.
                        try await writer.finish()
                        outcome.fetched -= takenFromFile
                        outcome.fromArchive -= takenFromFile
                        if settings.sourceMode == .auto { outcome.rewritten += takenFromFile }
                    }
                    logger.warning(settings.sourceMode == .archive ? "archive file not used; --source archive takes nothing from REST"
                                   : "archive file not used; its period comes from REST", metadata: ["unit": "\(unit)", "reason": "\(reason)"])
                    try await rest(file.range.lowerBound, last, outcome: &outcome)
                }
            }
        }
        if outcome.archiveLacked > 0 {
            logger.warning("--source archive: the files lacked candles of the range; run with --source auto to fetch them from REST",
                           metadata: ["unit": "\(unit)", "candles": "\(outcome.archiveLacked)"])
        }
        outcome.caughtUp = true
    }

    /// `previous`: the open time of the newest candle Binance has shown this unit; a candle after it that is not its
    /// next one means Binance has none in between (an outage, a halt), which it has just confirmed.
    private func fetch(plan: FetchPlan, limit: Int, into writer: BatchWriter<Kline>, outcome: inout Outcome, outages: inout [KlineHole],
                       previous: inout Int64?) async throws {
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
            for kline in closed {
                if let previous, kline.openTime > interval.nextOpenTime(after: previous) {
                    let from = interval.nextOpenTime(after: previous), to = interval.openTime(containing: kline.openTime - 1)
                    outages.append(KlineHole(symbol: unit.symbol.name, from: from, to: to, missing: interval.count(from: from, to: to)))
                }
                previous = max(previous ?? kline.openTime, kline.openTime)
            }
            if !closed.isEmpty {
                outcome.fetched += closed.count
                RunMetrics.current?.add("binance_extractor.klines.fetched", Double(closed.count), unit: "{kline}",
                                        description: "Closed, checked klines fetched from Binance.",
                                        attributes: ["market": unit.market.rawValue, "interval": interval.rawValue, "series": unit.series.rawValue])
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
    private func firstOpenTime(from: Int64, through end: Int64, outcome: inout Outcome) async throws -> Int64? {
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

/// Where a symbol's first candle is, once asked (see `SymbolExtractor.fetchWithArchives`).
struct ListingProbe {
    var probed = false
    var first: Int64?
}

/// A file a dry run would read.
public struct PlannedFile: Sendable, Equatable {
    public let name: String
    public let path: String
    /// From the HEAD answer's Content-Length; nil when the host gave none.
    public let bytes: Int?
}

/// Open times `[from, to]` a run takes from REST.
public struct RESTRange: Sendable, Equatable {
    public var from: Int64
    public var to: Int64
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
    outcome.written = max(0, await writer.written - outcome.rewritten)
    if let first = await writer.firstFlushed { outcome.firstOpenTime = keys(first).time }
    if let last = await writer.lastFlushed { (outcome.lastOpenTime, outcome.resumeAfter) = keys(last) }
    if failure == nil, outcome.archiveOnly ? outcome.archiveLacked > 0 || outcome.unreadFileCount > 0
        : outcome.archiveUnreachable && outcome.archiveLacked > 0 {
        // What the run could not get is not "ok": archive-only mode takes nothing from REST, and what only a file holds
        // (metrics older than REST keeps) is not Binance's to lack while its host cannot be reached. The unit fails
        // (exit 1), naming what is missing and why.
        // What archive-only mode could not get is not "ok": the unit fails (exit 1), naming what is missing and why.
        failure = ArchiveShortfall(archiveOnly: outcome.archiveOnly, lacked: outcome.archiveLacked, span: outcome.lackedSpan,
                                   files: outcome.unreadFiles, fileCount: outcome.unreadFileCount)
    }
    guard let failure else { return outcome }
    if failure is CancellationError {
        outcome.interrupted = true
        return outcome
    }
    throw UnitFailure(underlying: failure, partial: outcome)
}

/// `--source archive` did not get the whole range: rows no file held, files that could not be read.
public struct ArchiveShortfall: Error, CustomStringConvertible {
    /// `--source archive` (else: the archive host was unreachable and REST does not keep what the files hold).
    public let archiveOnly: Bool
    public let lacked: Int64
    public let span: ClosedRange<Int64>?
    public let files: [String]
    public let fileCount: Int

    public var description: String {
        var parts: [String] = []
        if lacked > 0 {
            let range = span.map { " between \(UTCCalendar.iso8601($0.lowerBound)) and \(UTCCalendar.iso8601($0.upperBound))" } ?? ""
            parts.append("\(lacked) rows\(range) are in no archive file")
        }
        if fileCount > 0 {
            parts.append("\(fileCount) files were not read (\(files.joined(separator: "; "))\(fileCount > files.count ? "; …" : ""))")
        }
        let what = parts.joined(separator: ", and ")
        if archiveOnly {
            return "--source archive: \(what); nothing is taken from REST in this mode. Run with --source auto to fetch them from REST, "
                + "or end the range (--end) where the files end"
        }
        return "the archive host could not be reached: \(what), and REST does not keep them (older than it serves). Nothing was "
            + "recorded as missing on Binance's side; run again once the archive host answers"
    }
}

/// A unit that failed, with what it had done before.
public struct UnitFailure: Error, CustomStringConvertible {
    public let underlying: any Error
    public let partial: SymbolExtractor.Outcome
    public var description: String { "\(underlying)" }
}
