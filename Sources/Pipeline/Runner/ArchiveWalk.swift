import BinanceAPI
import BinanceArchive
import Logging
import StoreKit

/// How a unit uses Binance's public archives (data.binance.vision): `--source`, the files' client, and whether a dry
/// run only lists them.
public struct ArchiveUse: Sendable {
    public var mode: SourceMode
    public var source: (any ArchiveSource)?
    /// `--dry-run`: files are not downloaded, only asked for their size (HEAD); the plan is in the outcome.
    public var listOnly: Bool

    public init(mode: SourceMode = .rest, source: (any ArchiveSource)? = nil, listOnly: Bool = false) {
        self.mode = mode
        self.source = source
        self.listOnly = listOnly
    }

    /// Files are read (or listed): `--source auto|archive` with a client.
    var reads: Bool { mode != .rest && source != nil }
    /// `--source archive`: nothing comes from REST; what the files lack is counted and reported.
    public var archiveOnly: Bool { mode == .archive && source != nil }
}

/// A dataset whose closed days and months Binance also publishes as files: the unit runner's archive walk
/// (`ArchiveWalk`) reads them, in time order, and asks the dataset only what differs between datasets: its files,
/// how it fetches a stretch from REST, how it takes a file's rows and what it does for a file it cannot use.
///
/// On a time grid (`grid`: candles, 5-minute metrics) the walk also finds what a file lacks between and after its
/// rows (an incomplete file, binance-public-data #436) and asks REST for it before the later row is taken, so the
/// writes stay in time order and a retry resumes exactly where they stopped. Without a grid (aggregate trades, whose
/// holes show as jumps in ids) the dataset's `take` finds its own holes.
public protocol ArchivedWork: UnitWork where Row: Equatable {
    var archives: ArchiveUse { get }
    /// Where the walk says what it did not use (with the unit in its metadata).
    var archiveLogger: Logger { get }
    /// What its rows are called in messages ("candles", "trades"); by default "rows".
    var rowsName: String { get }
    /// The time between two rows (ms), or nil where rows are not on a grid.
    var grid: Int64? { get }
    /// The step a dry run's REST stretches are counted in (the grid; 1 ms for trades).
    var listingStep: Int64 { get }

    /// The attempt's files and REST stretches in time order, and the times they cover; nil: nothing to read from a file
    /// (the whole plan from `fetchREST`).
    func segments(_ plan: inout Plan, outcome: inout UnitOutcome) async throws -> (segments: [ArchiveSegment], range: ClosedRange<Int64>)?
    /// The whole plan from REST (`--source rest`, or no file in range).
    func fetchREST(_ plan: inout Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws
    /// Times `[from, to]` from REST: a stretch no file covers, or what a file lacks (never called with `--source archive`
    /// on a grid: the walk counts those as lacked).
    func rest(_ from: Int64, _ to: Int64, _ plan: inout Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws
    /// How a file's lines become checked rows.
    func format(_ file: ArchiveFile, _ plan: Plan) -> ArchiveRowFormat<Row>
    /// A file's checked rows in order (on a grid, only those inside the range). By default: appended as they are.
    func take(_ rows: [Row], of file: ArchiveFile, _ plan: inout Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws
    /// A file was read whole, `rows` rows; `covered` is the next grid time it did not cover (the walk asks REST for what
    /// lies after it). By default nothing.
    func read(_ file: ArchiveFile, rows: Int, covered: inout Int64, _ plan: inout Plan, outcome: inout UnitOutcome) async throws
    /// A file that gave no rows (not published, unreachable, refused), already noted in the outcome; `taken`: rows of it
    /// written before a fault showed (a CRC-32 checked at the entry's end). On a grid the walk then asks REST for its
    /// period. By default nothing.
    func unread(_ file: ArchiveFile, _ read: ArchiveRead, taken: Int, _ plan: inout Plan, into writer: BatchWriter<Row>,
                outcome: inout UnitOutcome) async throws
    /// After the last file: what comes after them (by default nothing; on a grid, the last stretch is a segment).
    func finish(_ plan: inout Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws
    /// A dry run: what it does for a REST stretch left by the files (with `--source auto`). By default nothing.
    func listed(_ from: Int64, _ to: Int64, _ plan: inout Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws
    /// Where the dataset's first row at or after `from` is (one request), asked once, at the first file missing or empty
    /// while nothing has been seen: a range may start long before the symbol was listed, and what lies before it is
    /// then skipped instead of a 404 per month and day and a REST request per day. `.some(nil)`: none in range;
    /// nil (the default): the dataset does not look.
    func firstTime(from: Int64, through end: Int64, _ plan: inout Plan, outcome: inout UnitOutcome) async throws -> Int64??
}

extension ArchivedWork {
    public var rowsName: String { "rows" }

    public var listingStep: Int64 { grid ?? 1 }

    public func take(_ rows: [Row], of file: ArchiveFile, _ plan: inout Plan, into writer: BatchWriter<Row>,
                     outcome: inout UnitOutcome) async throws {
        try await ArchiveWalk<Self>.append(rows, into: writer, outcome: &outcome)
    }

    public func read(_ file: ArchiveFile, rows: Int, covered: inout Int64, _ plan: inout Plan, outcome: inout UnitOutcome) async throws {}

    public func unread(_ file: ArchiveFile, _ read: ArchiveRead, taken: Int, _ plan: inout Plan, into writer: BatchWriter<Row>,
                       outcome: inout UnitOutcome) async throws {}

    public func finish(_ plan: inout Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws {}

    public func listed(_ from: Int64, _ to: Int64, _ plan: inout Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws {}

    public func firstTime(from: Int64, through end: Int64, _ plan: inout Plan, outcome: inout UnitOutcome) async throws -> Int64?? { nil }

    /// The unit runner's fetch for a dataset with files: the archive walk, or REST alone.
    public func fetch(_ plan: Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws {
        var plan = plan
        outcome.archiveOnly = archives.archiveOnly
        try await ArchiveWalk(work: self).fetch(&plan, into: writer, outcome: &outcome)
    }
}

/// The archive walk every dataset with files shares (`--source auto|archive`): its whole closed months and days from
/// files (a month without its monthly file from its daily files), the rest from REST; what a file lacks from REST too,
/// so a file never leaves a hole. With `--source archive` nothing comes from REST: what the files lack is counted, and
/// the unit fails naming it (`complete`). A dry run lists the files with their sizes instead of reading them.
struct ArchiveWalk<Work: ArchivedWork> {
    let work: Work
    var logger: Logger { work.archiveLogger }

    /// Rows of a file, counted as fetched from the archives, to the writer.
    static func append(_ rows: [Work.Row], into writer: BatchWriter<Work.Row>, outcome: inout UnitOutcome) async throws {
        guard !rows.isEmpty else { return }
        outcome.fetched += rows.count
        outcome.fromArchive += rows.count
        try await writer.append(rows)
    }

    func fetch(_ plan: inout Work.Plan, into writer: BatchWriter<Work.Row>, outcome: inout UnitOutcome) async throws {
        let use = work.archives
        guard use.reads, let archive = use.source, let (segments, range) = try await work.segments(&plan, outcome: &outcome) else {
            return try await work.fetchREST(&plan, into: writer, outcome: &outcome)
        }
        if use.listOnly {
            let listed = outcome.restRanges.count
            await ArchivePlanner.list(segments, archive: archive, step: work.listingStep, within: range, outcome: &outcome)
            if use.mode == .auto {
                for stretch in outcome.restRanges[listed...] {
                    try await work.listed(stretch.from, stretch.to, &plan, into: writer, outcome: &outcome)
                }
            }
            return
        }
        var walk = State(range: range)
        var queue = segments[...]
        var pending: [ArchiveSegment] = []
        do {
            while let segment = pending.isEmpty ? queue.popFirst() : pending.removeFirst() {
                try Task.checkCancellation()
                switch segment {
                case .rest(let start, let end):
                    await writer.setSource(.rest)
                    try await rest(max(start, walk.first ?? start), end, &plan, walk: walk, into: writer, outcome: &outcome)
                case .file(let file) where walk.first.map({ file.range.upperBound <= $0 }) ?? false:
                    continue  // before the symbol's first row: no file, no REST
                case .file(let file):
                    try await read(file, from: archive, &plan, walk: &walk, pending: &pending, into: writer, outcome: &outcome)
                }
            }
            await writer.setSource(.rest)
            try await work.finish(&plan, into: writer, outcome: &outcome)
        } catch is ArchiveWalkStop {
            return  // the dataset's own limit (a page cap): the next run continues from what was written
        }
        if outcome.archiveLacked > 0, use.archiveOnly {
            logger.warning("--source archive: the files lacked \(work.rowsName) of the range; run with --source auto to fetch them from REST",
                           metadata: ["\(work.rowsName)": "\(outcome.archiveLacked)"])
        }
    }

    /// What the walk knows across files.
    struct State {
        var range: ClosedRange<Int64>
        /// The dataset's first row, once asked (`firstTime`).
        var probed = false
        var first: Int64?
    }

    /// One file: its rows to `take`, REST between and after them on a grid, and what the dataset does when it gives none.
    private func read(_ file: ArchiveFile, from archive: any ArchiveSource, _ plan: inout Work.Plan, walk: inout State,
                      pending: inout [ArchiveSegment], into writer: BatchWriter<Work.Row>, outcome: inout UnitOutcome) async throws {
        let range = walk.range
        let step = work.listingStep
        let fromArchiveBefore = outcome.fromArchive
        var covered = max(file.range.lowerBound, range.lowerBound)
        let state = walk
        var lastTaken: Int64?
        // What the file lacks, asked of REST while it is read or after it, is an archive hole in the ledger's sources.
        await writer.setSource(.archive)
        let result = try await archive.readInSpan(file, format: work.format(file, plan)) { rows in
            guard let grid = work.grid else {
                if let row = rows.last { lastTaken = Work.keys(row).time }
                return try await work.take(rows, of: file, &plan, into: writer, outcome: &outcome)
            }
            var held: [Work.Row] = []
            held.reserveCapacity(rows.count)
            for row in rows {
                let at = Work.keys(row).time
                guard range.contains(at) else { continue }
                if at > covered {
                    try await work.take(held, of: file, &plan, into: writer, outcome: &outcome)
                    held.removeAll(keepingCapacity: true)
                    await writer.setSource(.archiveHole)
                    try await rest(covered, at - grid, &plan, walk: state, into: writer, outcome: &outcome)
                    await writer.setSource(.archive)
                }
                covered = max(covered, at + grid)
                held.append(row)
                lastTaken = at
            }
            try await work.take(held, of: file, &plan, into: writer, outcome: &outcome)
        }
        await writer.setSource(.archiveHole)
        let last = file.range.upperBound - step
        switch result {
        case .rows(let count, let facts):
            outcome.archiveFiles += 1
            if let ledger = work.ledger {
                outcome.ledgerFiles.append(ArchiveFileRecord(
                    path: file.path, market: file.market, dataset: file.datasetFolder, symbol: file.symbol.name, series: file.seriesText,
                    period: file.periodText, table: ledger.table, size: facts.size, etag: facts.etag, lastModified: facts.lastModified,
                    sha256: facts.sha256 ?? "", rowsRead: count, rowsWritten: outcome.fromArchive - fromArchiveBefore,
                    readAt: ledger.clock.now(), lastRowTime: lastTaken))
            }
            // An empty file before anything was seen: the same search for the first row as a missing one.
            if count == 0 {
                _ = try await probe(file, &plan, walk: &walk, outcome: &outcome)
                if let first = walk.first { covered = max(covered, first) }
            }
            try await work.read(file, rows: count, covered: &covered, &plan, outcome: &outcome)
            // What the file lacks at its end, from REST.
            if work.grid != nil, covered <= min(last, range.upperBound) {
                try await rest(covered, last, &plan, walk: walk, into: writer, outcome: &outcome)
            }
        case .absent:
            // A file not there (yet). Before the symbol's first row: nothing to fetch. A month: its daily files may be
            // there (monthly files appear some days into the next month). A day: its rows come from REST.
            _ = try await probe(file, &plan, walk: &walk, outcome: &outcome)
            if let first = walk.first, file.range.upperBound <= first { return }
            let days = ArchivePlanner.days(of: file)
            if !days.isEmpty {
                pending = days.map { .file($0) } + pending
                return
            }
            fallthrough
        case .unreachable, .refused:
            if result == .unreachable { await writer.setSource(.rest) }
            outcome.unread(file, result)
            if case .refused(let reason) = result {
                logger.warning(work.archives.archiveOnly ? "archive file not used; --source archive takes nothing from REST"
                               : "archive file not used; its period comes from REST",
                               metadata: ["file": "\(file.fileName)", "reason": "\(reason)"])
            }
            try await work.unread(file, result, taken: outcome.fromArchive - fromArchiveBefore, &plan, into: writer, outcome: &outcome)
            if work.grid != nil { try await rest(file.range.lowerBound, last, &plan, walk: walk, into: writer, outcome: &outcome) }
        }
    }

    /// Asks the dataset for its first row once, at the first file missing or empty while nothing has been fetched;
    /// returns whether it answered.
    private func probe(_ file: ArchiveFile, _ plan: inout Work.Plan, walk: inout State, outcome: inout UnitOutcome) async throws -> Bool {
        guard !walk.probed, outcome.fetched == 0 else { return false }
        walk.probed = true
        let from = max(file.range.lowerBound, walk.range.lowerBound)
        guard let answer = try await work.firstTime(from: from, through: walk.range.upperBound, &plan, outcome: &outcome) else { return false }
        walk.first = answer ?? (walk.range.upperBound + 1)
        return true
    }

    /// One REST stretch `[from, to]` inside the range, or on a grid with `--source archive` its count as lacked.
    private func rest(_ from: Int64, _ to: Int64, _ plan: inout Work.Plan, walk: State, into writer: BatchWriter<Work.Row>,
                      outcome: inout UnitOutcome) async throws {
        let from = max(from, walk.range.lowerBound), to = min(to, walk.range.upperBound)
        guard to >= from else { return }
        if let grid = work.grid, work.archives.archiveOnly {
            outcome.lack((to - from) / grid + 1, from: from, to: to)
            return
        }
        try await work.rest(from, to, &plan, into: writer, outcome: &outcome)
    }
}

/// Thrown by a dataset's `take` to end the walk where its own limit is reached (a run's page cap): what was written
/// stays, and the next run continues from it.
public struct ArchiveWalkStop: Error {
    public init() {}
}
