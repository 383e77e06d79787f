import BinanceAPI
import BinanceArchive
import Clocks
import Logging
import StoreKit
import Telemetry
import Tracing

/// The archive walk of a kline unit (`--source auto|archive`): files for whole closed periods, REST for the rest.
extension SymbolExtractor {
    /// `--source auto|archive`: the range's whole closed months and days from files (a month without its monthly
    /// file from its daily files), the rest from REST; after each file, what it lacked (an incomplete file, binance-
    /// public-data #436) from REST too, so a file never leaves a hole. With `archive`, nothing comes from REST: what
    /// the files lacked is counted and reported.
    func fetchWithArchives(_ archive: any ArchiveSource, plan given: FetchPlan, limit: Int, into writer: BatchWriter<Kline>,
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
        func fetchREST(_ from: Int64, _ to: Int64, outcome: inout Outcome) async throws {
            var sub = plan
            (sub.start, sub.end, sub.candleBudget) = (from, to, nil)
            try await fetch(plan: sub, limit: limit, into: writer, outcome: &outcome, outages: &outages, previous: &previous)
        }
        if settings.listArchiveFiles {
            // A dry run reads no file: it lists them with their sizes, and checks the REST ranges left as a dry run does.
            let listed = outcome.restRanges.count
            await ArchivePlanner.list(segments, archive: archive, step: step, within: plan.start...plan.end, outcome: &outcome)
            if settings.sourceMode == .auto {
                for range in outcome.restRanges[listed...] { try await fetchREST(range.from, range.to, outcome: &outcome) }
            }
            outcome.caughtUp = true
            return
        }
        // One REST range `[start, end]` (open times), or its count in archive-only mode.
        func rest(_ start: Int64, _ end: Int64, outcome: inout Outcome) async throws {
            let from = max(start, plan.start), to = min(end, plan.end)
            guard to >= from else { return }
            if settings.sourceMode == .archive {
                outcome.lack((to - from) / step + 1, from: from, to: to)
                return
            }
            try await fetchREST(from, to, outcome: &outcome)
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
            guard !listing.probed && previous == nil && outcome.fetched == 0 else { return }
            listing.probed = true
            listing.first = try await firstOpenTime(from: max(file.range.lowerBound, plan.start), through: plan.end, outcome: &outcome) ?? (plan.end + 1)
        }
        func notPublished(_ file: ArchiveFile, pending: inout [ArchiveSegment], listing: inout ListingProbe, outcome: inout Outcome) async throws {
            try await probe(file, listing: &listing, outcome: &outcome)
            if let first = listing.first, file.range.upperBound <= first { return }
            if case .month = file.period {
                pending = ArchivePlanner.days(of: file).map { .file($0) } + pending
            } else {
                outcome.unread(file, .absent)
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
            case .file(let file):
                let last = file.range.upperBound - step
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
                    RunPipelineMetrics.current.fetched(klines: rows.count, table: table, fromArchive: true)
                    try await writer.append(rows)
                    progress?.advanced(unit, candles: rows.count)
                }
                // One span per file (download, CHECKSUM, unzip, parse, write); REST fills what the file lacks between its rows.
                let (read, covered) = try await readTimeSeriesFile(file, from: archive, format: format, time: \.openTime, step: step,
                                                                   within: plan.start...plan.end, take: { try await take($0, outcome: &outcome) },
                                                                   rest: { try await rest($0, $1, outcome: &outcome) })
                var expected = covered
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
}

/// Where a symbol's first candle is, once asked (see `SymbolExtractor.fetchWithArchives`).
struct ListingProbe {
    var probed = false
    var first: Int64?
}
