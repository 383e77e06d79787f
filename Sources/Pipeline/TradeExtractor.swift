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
    let dryRun: Bool
    let sourceMode: SourceMode
    let archive: (any ArchiveSource)?
    let logger: Logger

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
    }

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
        outcome.archiveOnly = sourceMode == .archive && archive != nil
        return plan
    }

    public func fetch(_ plan: TradePlan, into writer: BatchWriter<AggTrade>, outcome: inout UnitOutcome) async throws {
        var cursor = plan.cursor
        defer { if cursor.capped { outcome.plan?.capped = true } }
        var listed = false
        if sourceMode != .rest, let archive {
            if dryRun {
                // A dry run downloads no file: it lists them, with their size, and the stretches left to REST.
                try await list(archive, from: plan.fromTime, until: plan.until, now: plan.runStart, outcome: &outcome)
                listed = true
            } else {
                try await fromArchives(archive, from: plan.fromTime, until: plan.until, now: plan.runStart, cursor: &cursor, writer: writer,
                                       outcome: &outcome)
            }
        }
        if sourceMode != .archive && !cursor.capped && !listed {
            if cursor.nextId == nil {
                cursor.nextId = try await firstTrade(from: plan.fromTime, to: plan.until, outcome: &outcome)
            }
            try await page(&cursor, before: nil, until: plan.until, writer: writer, outcome: &outcome)
        }
    }

    public func write(_ batch: [AggTrade]) async throws -> Int {
        let n = dryRun ? 0 : try await store.write(table: TradeTable(market: market), symbol: symbol, trades: batch)
        RunPipelineMetrics.current.written(trades: n, market: market)
        return n
    }

    public static func keys(_ row: AggTrade) -> (time: Int64, key: Int64) { (row.time, row.id) }

    /// The first trade at or after `from` (up to `to`), asking hour-long windows.
    private func firstTrade(from: Int64, to: Int64, outcome: inout UnitOutcome) async throws -> Int64? {
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
    /// `until` (the moment the run started) or a short page.
    private func page(_ cursor: inout Cursor, before: Int64?, until: Int64, writer: BatchWriter<AggTrade>,
                      outcome: inout UnitOutcome) async throws {
        while let fromId = cursor.nextId, before.map({ fromId < $0 }) ?? true {
            guard cursor.pages < maxPages else {
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

    /// The archive files of `[from, until]` (whole closed days and months), in time order; REST by id for the ids a
    /// file lacks (before the file's next row is written, so the writes stay in id order). Periods without a file
    /// are left to the ids: the next file's first row shows the jump, and REST pages across it.
    private func fromArchives(_ archive: any ArchiveSource, from: Int64, until: Int64, now: Int64, cursor: inout Cursor,
                              writer: BatchWriter<AggTrade>, outcome: inout UnitOutcome) async throws {
        let segments = ArchivePlanner.segments(market: market, symbol: symbol, dataset: .aggTrades, step: 1, start: from, end: until, now: now)
        var queue = segments[...]
        var pending: [ArchiveSegment] = []
        while !cursor.capped, let segment = pending.isEmpty ? queue.popFirst() : pending.removeFirst() {
            try Task.checkCancellation()
            guard case .file(let file) = segment else {
                // A stretch no file covers (before the first whole day, today): REST by id starts from its first trade.
                if case .rest(let start, let end) = segment {
                    if sourceMode == .archive {
                        outcome.uncovered(from: start, to: end)
                    } else if cursor.nextId == nil, end < until {
                        cursor.nextId = try await firstTrade(from: start, to: end, outcome: &outcome)
                    }
                }
                continue
            }
            let format = ArchiveRowFormat<AggTrade>(reader: ArchiveCSV.aggTradeRows, key: \.id) { trade in
                guard file.range.contains(trade.time), trade.time >= from, trade.time <= until else { return false }
                // One trade on its own (the checks of a REST page, "Compressed/Aggregate Trades List").
                try AggTrade.check([trade], fromId: nil, limit: 1, latest: until + 60_000)
                return true
            }
            let read: ArchiveRead
            do {
                read = try await archive.readInSpan(file, format: format) { trades in
                    var take: [AggTrade] = []
                    take.reserveCapacity(trades.count)
                    for trade in trades {
                        if let next = cursor.nextId {
                            if trade.id < next { continue }  // stored already, or fetched from REST
                            if trade.id > next {
                                try await flush(&take, writer: writer, outcome: &outcome)
                                if sourceMode == .archive {
                                    outcome.lack(trade.id - next, from: outcome.lastTime ?? file.range.lowerBound, to: trade.time)
                                } else {
                                    try await page(&cursor, before: trade.id, until: until, writer: writer, outcome: &outcome)
                                    if cursor.capped { throw TradeCapReached() }
                                }
                            }
                        }
                        take.append(trade)
                        cursor.nextId = trade.id + 1
                    }
                    try await flush(&take, writer: writer, outcome: &outcome)
                }
            } catch is TradeCapReached {
                return
            }
            switch read {
            case .rows:
                outcome.archiveFiles += 1
            case .absent where ArchivePlanner.days(of: file).count > 0:
                // A month not published yet: its daily files may be.
                pending = ArchivePlanner.days(of: file).map { .file($0) } + pending
            case .absent, .unreachable, .refused:
                outcome.unread(file, read)
                if case .refused(let reason) = read {
                    logger.warning("archive file not used; its trades come from REST", metadata: ["symbol": "\(symbol)", "reason": "\(reason)"])
                }
                // The file's trades come by id; with no id known yet, from the first trade of its period.
                if cursor.nextId == nil && sourceMode != .archive {
                    cursor.nextId = try await firstTrade(from: max(from, file.range.lowerBound), to: file.range.upperBound - 1, outcome: &outcome)
                }
            }
        }
    }

    /// `--dry-run`: the files the run would read (size from HEAD) and the stretches REST would page through.
    private func list(_ archive: any ArchiveSource, from: Int64, until: Int64, now: Int64, outcome: inout UnitOutcome) async throws {
        let segments = ArchivePlanner.segments(market: market, symbol: symbol, dataset: .aggTrades, step: 1, start: from, end: until, now: now)
        await ArchivePlanner.list(segments, archive: archive, step: 1, within: from...until, outcome: &outcome)
    }

    private func flush(_ trades: inout [AggTrade], writer: BatchWriter<AggTrade>, outcome: inout UnitOutcome) async throws {
        guard !trades.isEmpty else { return }
        outcome.fetched += trades.count
        outcome.fromArchive += trades.count
        try await writer.append(trades)
        trades.removeAll(keepingCapacity: true)
    }
}

/// The run's page cap was reached while filling a file's hole: the rest of the file waits for the next run.
struct TradeCapReached: Error {}
