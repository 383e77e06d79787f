import BinanceAPI
import BinanceArchive
import Clocks
import Foundation
import StoreKit

/// A dataset `audit` can check: its table and key, each row's values as the table stores them, Binance's own rows from
/// REST for a stretch, and how one of its files is read (for `--recheck-archives`). Each dataset conforms in a file of
/// its own, beside its extractor; the comparing is the same for all (`Auditor`).
public protocol AuditableWork: UnitWork where Row: Equatable {
    /// The table, the column rows are matched on (`open_time`, `agg_trade_id`, ...) and whether it holds times.
    var auditTable: AuditedTable<Row> { get }
    /// Binance's rows from REST for times `[from, to]`, in key order, checked as a run checks them; `sample`: a first
    /// page is enough (trades: 1000 ids from `from`). Returns the keys `(after, through]` the rows stand for (stored rows
    /// there that REST lacks are extra), or nil when REST keeps nothing there to compare (metrics older than 30 days).
    func reference(from: Int64, to: Int64, sample: Bool, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws -> (after: Int64, through: Int64)?
    /// How one of the dataset's files is read (the same checks as a run's); nil: the dataset has no files.
    func fileFormat(_ file: ArchiveFile) -> ArchiveRowFormat<Row>?
}

/// What `audit` compares of a dataset's rows: the table's written columns but `symbol`, in order, as canonical text.
public struct AuditedTable<Row>: Sendable {
    public let definition: TableDefinition
    public let keyColumn: String
    public let key: @Sendable (Row) -> Int64
    /// The row's values in the order of `columns`, as `Canonical` prints them (times as Unix ms).
    public let values: @Sendable (Row) -> [String?]

    public init(definition: TableDefinition, keyColumn: String, key: @escaping @Sendable (Row) -> Int64, values: @escaping @Sendable (Row) -> [String?]) {
        self.definition = definition
        self.keyColumn = keyColumn
        self.key = key
        self.values = values
    }

    /// The columns compared.
    public var columns: [TableDefinition.Column] { definition.written.filter { $0.name != "symbol" } }
    var keyIsTime: Bool { definition.ordered.first { $0.name == keyColumn }?.kind == .time }
}

/// One value that differs between the copy and the reference (REST, or a file served again), or a row only one side
/// has (`column` "row": `stored` or `reference` is nil).
public struct AuditDifference: Sendable, Equatable {
    public var table: String
    public var symbol: String
    /// The row's key: a time (Unix ms) or an id.
    public var key: Int64
    public var keyIsTime: Bool
    public var column: String
    public var stored: String?
    public var reference: String?
    /// Written with the reference's values (`--fix`, or a re-uploaded file), or kept as stored (`--prefer archive`).
    public var resolution: Resolution = .open

    public enum Resolution: String, Sendable { case open, fixed, kept }

    public var keyText: String { keyIsTime ? UTCCalendar.iso8601(key) : String(key) }
}

/// What an audit found: the figures its report prints.
public struct AuditTotals: Sendable {
    /// The differences listed (the first `maxListed`; `differenceCount` counts all).
    public var differences: [AuditDifference] = []
    public var differenceCount = 0
    /// Rows that differed, were missing or were extra.
    public var rowsDiffering = 0
    public var fixedRows = 0
    public var keptRows = 0
    /// Differences neither fixed nor kept by choice.
    public var open = 0
    public var rowsCompared = 0
    /// Stretches compared with REST.
    public var windows = 0
    public var skipped: [String] = []
    public init() {}
}

/// What an audit found, gathered across its units.
public actor AuditFindings {
    public private(set) var totals = AuditTotals()
    public let maxListed: Int
    /// Per table and symbol: the key ranges compared with REST, and the runs of keys REST had that the copy lacked (one
    /// range a run, so a table missing a year of candles costs one entry, not one a candle). A hole inside a compared
    /// range where REST had nothing either is Binance's own (`exchange_downtime`).
    private var compared: [String: [ClosedRange<Int64>]] = [:]
    private var missing: [String: [ClosedRange<Int64>]] = [:]

    public init(maxListed: Int = 1000) { self.maxListed = maxListed }

    /// One batch's differences: `rows` rows differed (of them `fixed` written and `kept` left as stored), `compared`
    /// reference rows were compared.
    func add(_ found: [AuditDifference], rows: Int, compared: Int, fixed: Int = 0, kept: Int = 0) {
        totals.differenceCount += found.count
        totals.rowsCompared += compared
        totals.rowsDiffering += rows
        totals.fixedRows += fixed
        totals.keptRows += kept
        totals.open += found.filter { $0.resolution == .open }.count
        totals.differences += found.prefix(max(0, maxListed - totals.differences.count))
    }

    /// Keys `run` (a run of consecutive reference rows) that the copy lacks.
    func lacked(table: String, symbol: String, run: ClosedRange<Int64>) {
        missing[table + " " + symbol, default: []].append(run)
    }

    func window(table: String, symbol: String, keys: ClosedRange<Int64>) {
        totals.windows += 1
        compared[table + " " + symbol, default: []].append(keys)
    }

    /// Whether REST was asked for all of `hole` (keys) and had none of it.
    public func restHasNone(table: String, symbol: String, hole: ClosedRange<Int64>) -> Bool {
        let key = table + " " + symbol
        guard compared[key]?.contains(where: { $0.contains(hole.lowerBound) && $0.contains(hole.upperBound) }) == true else { return false }
        return !(missing[key] ?? []).contains { $0.overlaps(hole) }
    }

    public func skip(_ why: String) { if totals.skipped.count < 100 { totals.skipped.append(why) } }
}

/// Compares a stream of reference rows with what is stored, batch by batch, in key order: reads the stored rows of
/// each batch's key range (and those between batches, so a stored row the reference lacks is found), lists what
/// differs, and with `fix` writes the reference's rows where they differ or are missing.
public final class RowComparer<Row: Sendable & Equatable>: @unchecked Sendable {
    let table: AuditedTable<Row>
    let reader: any AuditReading
    let symbol: String
    let fix: Bool
    let keepStored: Bool
    let write: @Sendable ([Row]) async throws -> Int
    let findings: AuditFindings
    private var cursor: Int64?
    /// Rows that differed or were missing, and of them those written.
    public private(set) var changedRows = 0
    public private(set) var compared = 0

    /// `after`: the key before the first one compared (nil: the one before the reference's first row). `keepStored` (`--prefer archive`): differing values are kept,
    /// only missing rows are written.
    public init(table: AuditedTable<Row>, reader: any AuditReading, symbol: String, after: Int64?, fix: Bool, keepStored: Bool,
                findings: AuditFindings, write: @escaping @Sendable ([Row]) async throws -> Int) {
        self.table = table
        self.reader = reader
        self.symbol = symbol
        cursor = after
        self.fix = fix
        self.keepStored = keepStored
        self.findings = findings
        self.write = write
    }

    /// Stored rows read per query: a batch's range holds at most the batch's rows, unless the copy has extra ones.
    static var readLimit: Int { 100_000 }

    /// One batch of reference rows (in key order, after those compared before).
    public func compare(_ batch: [Row]) async throws {
        guard let first = batch.first, let last = batch.last else { return }
        // Without a key to start after (ids), the first row compared is the first of the reference.
        if cursor == nil { cursor = table.key(first) - 1 }
        let through = table.key(last)
        let stored = try await storedRows(after: cursor, through: through)
        var found: [AuditDifference] = []
        var toWrite: [Row] = []
        var kept = 0
        let columns = table.columns
        for row in batch {
            let key = table.key(row)
            let reference = table.values(row)
            guard let have = stored[key] else {
                found.append(difference(key, "row", nil, "present"))
                toWrite.append(row)
                openRun = openRun.map { $0.lowerBound...key } ?? key...key
                continue
            }
            await flushRun()
            var differs = false
            for (i, column) in columns.enumerated() where i < have.count && i < reference.count {
                let mine = Canonical.value(have[i], kind: column.kind), theirs = reference[i]
                if mine != theirs {
                    found.append(difference(key, column.name, mine, theirs))
                    differs = true
                }
            }
            if differs {
                if keepStored { kept += 1 } else { toWrite.append(row) }
            }
        }
        let referenceKeys = Set(batch.map(table.key))
        let extra = stored.keys.filter { !referenceKeys.contains($0) }.sorted()
        found += extra.map { difference($0, "row", "present", nil) }
        // Listed in key order, a row's columns in the table's order.
        found = found.enumerated().sorted { ($0.element.key, $0.offset) < ($1.element.key, $1.offset) }.map(\.element)
        compared += batch.count
        changedRows += toWrite.count
        if fix, !toWrite.isEmpty { _ = try await write(toWrite) }
        let resolvedRows = Set(toWrite.map(table.key))
        for i in found.indices where found[i].column != "row" || found[i].stored == nil {
            if fix && resolvedRows.contains(found[i].key) { found[i].resolution = .fixed } else if keepStored, found[i].column != "row" { found[i].resolution = .kept }
        }
        await findings.add(found, rows: toWrite.count + kept + extra.count, compared: batch.count, fixed: fix ? toWrite.count : 0, kept: kept)
        cursor = through
    }

    /// Consecutive reference rows the copy lacks, as one key range, until a row it has ends the run.
    private var openRun: ClosedRange<Int64>?

    /// Hands the run of missing rows to the findings.
    public func flushRun() async {
        guard let run = openRun else { return }
        openRun = nil
        await findings.lacked(table: table.definition.name, symbol: symbol, run: run)
    }

    /// After the last batch: stored rows up to `through` that the reference lacks.
    public func finish(through: Int64) async throws {
        await flushRun()
        guard cursor.map({ $0 < through }) ?? true else { return }
        // A page at a time: a long stretch the copy has and the reference lacks is counted, never held whole.
        try await storedPages(after: cursor, through: through) { page in
            await findings.add(page.map { difference($0.key, "row", "present", nil) }, rows: page.count, compared: 0)
        }
        cursor = through
    }

    private func difference(_ key: Int64, _ column: String, _ stored: String?, _ reference: String?) -> AuditDifference {
        AuditDifference(table: table.definition.name, symbol: symbol, key: key, keyIsTime: table.keyIsTime, column: column, stored: stored, reference: reference)
    }

    /// Stored rows with keys in `(after, through]`, by key.
    private func storedRows(after: Int64?, through: Int64) async throws -> [Int64: [String?]] {
        var rows: [Int64: [String?]] = [:]
        try await storedPages(after: after, through: through) { page in
            for (key, row) in page { rows[key] = row }
        }
        return rows
    }

    /// Stored rows with keys in `(after, through]`, in key order, `readLimit` at a time, each with its key.
    private func storedPages(after: Int64?, through: Int64, _ body: ([(key: Int64, row: [String?])]) async throws -> Void) async throws {
        let keyIndex = table.columns.firstIndex { $0.name == table.keyColumn } ?? 0
        var from = after
        while true {
            let page = try await reader.rows(table.definition, symbol: symbol, key: table.keyColumn, after: from, through: through, limit: Self.readLimit)
            let keyed = page.compactMap { row in keyIndex < row.count ? row[keyIndex].flatMap { Int64($0) }.map { (key: $0, row: row) } : nil }
            try await body(keyed)
            guard page.count == Self.readLimit, let last = keyed.last?.key else { return }
            from = last
        }
    }
}

/// The audit's two checks of one dataset's table and symbol.
public enum Auditor {
    /// Compares the stored rows of `[from, to]` with REST's; with `fix`, writes REST's rows where they differ (or only
    /// where they are missing, `keepStored`). Returns the requests made, or nil when REST keeps nothing there.
    @discardableResult
    public static func compareWithREST<Work: AuditableWork>(_ work: Work, symbol: String, from: Int64, to: Int64, sample: Bool, reader: any AuditReading,
                                                           fix: Bool, keepStored: Bool, findings: AuditFindings) async throws -> Int? {
        let table = work.auditTable
        var outcome = UnitOutcome()
        // Keys are compared from the first row REST gives: for times, from `from`; for ids, from the first id.
        let comparer = RowComparer(table: table, reader: reader, symbol: symbol, after: table.keyIsTime ? from - 1 : nil, fix: fix,
                                   keepStored: keepStored, findings: findings) { try await work.write($0) }
        let writer = BatchWriter<Work.Row>(batchSize: 1000) { batch in
            try await comparer.compare(batch)
            return batch.count
        }
        let span = try await work.reference(from: from, to: to, sample: sample, into: writer, outcome: &outcome)
        try await writer.finish()
        await comparer.flushRun()
        guard let span else { return nil }
        if comparer.compared > 0 || table.keyIsTime { try await comparer.finish(through: span.through) }
        await findings.window(table: table.definition.name, symbol: symbol, keys: (span.after + 1)...max(span.after + 1, span.through))
        return outcome.requests
    }

    /// Reads a file served again (new ETag, Last-Modified or size) and writes its rows that differ from the copy.
    /// Returns what reading it gave and the rows changed.
    public static func reread<Work: AuditableWork>(_ work: Work, file: ArchiveFile, archive: any ArchiveSource, reader: any AuditReading,
                                                  findings: AuditFindings) async throws -> (read: ArchiveRead, changed: Int) {
        guard let format = work.fileFormat(file) else { return (.absent, 0) }
        let table = work.auditTable
        let comparer = RowComparer(table: table, reader: reader, symbol: file.symbol.name, after: table.keyIsTime ? file.range.lowerBound - 1 : nil,
                                   fix: true, keepStored: false, findings: findings) { try await work.write($0) }
        let read = try await archive.read(file, format: format) { rows in try await comparer.compare(rows) }
        await comparer.flushRun()
        if case .rows = read, table.keyIsTime { try await comparer.finish(through: file.range.upperBound - 1) }
        return (read, comparer.changedRows)
    }
}

/// The days `audit --sample N` compares.
public enum AuditSampling {
    /// `count` distinct UTC days of `span` (all of them when it has fewer), each clipped to the span, in time order,
    /// drawn by a generator seeded with `seed`.
    public static func days(_ span: ClosedRange<Int64>, count: Int, seed: UInt64) -> [ClosedRange<Int64>] {
        let day: Int64 = 86_400_000
        let firstDay = span.lowerBound / day, lastDay = span.upperBound / day
        let days = lastDay - firstDay + 1
        var chosen: Set<Int64> = []
        if days <= Int64(count) {
            chosen = Set(firstDay...lastDay)
        } else {
            var generator = SplitMix64(seed: seed)
            while chosen.count < count { chosen.insert(firstDay + Int64(generator.next() % UInt64(days))) }
        }
        return chosen.sorted().map { max($0 * day, span.lowerBound)...min(($0 + 1) * day - 1, span.upperBound) }
    }

    /// FNV-1a of a text: each table and symbol draws its own days from one seed.
    public static func hash(_ text: String) -> UInt64 {
        text.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }
}

