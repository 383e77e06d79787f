import BinanceAPI
import Clocks
import Foundation
import StoreKit

/// What one dataset brings to the unit runner: where an attempt starts and ends, how its rows are fetched and
/// written, and each row's keys. The runner does the rest, the same for every dataset: the writer and its batches,
/// capturing a failure, writing what was fetched whatever happened, and the outcome a retry resumes from. A dataset
/// that Binance also publishes as files conforms to `ArchivedWork` instead of writing `fetch`: the runner's archive
/// walk then reads the files, lists them in a dry run, and asks REST for what they lack. A new dataset is one type
/// conforming to this, and its command.
public protocol UnitWork: Sendable {
    associatedtype Row: Sendable
    /// What `plan` decided, handed to `fetch`, and the attempt's state as it goes (a range; the newest candle seen; for
    /// trades the next id).
    associatedtype Plan: Sendable

    var batchSize: Int { get }
    /// Batches written at once (1 by default; see `BatchWriter`).
    var writesInFlight: Int { get }
    /// The attempt's plan; sets `outcome.plan` (a retry keeps the first attempt's range and resumes after
    /// `attempt.resumeAfter`). Nil: nothing to fetch.
    func plan(_ attempt: UnitAttempt, outcome: inout UnitOutcome) async throws -> Plan?
    /// Fetches the plan's rows into `writer`, in key order (for an `ArchivedWork`, the archive walk).
    func fetch(_ plan: Plan, into writer: BatchWriter<Row>, outcome: inout UnitOutcome) async throws
    /// Writes one batch (nothing in a dry run); returns the rows written.
    func write(_ batch: [Row]) async throws -> Int
    /// A row's time and resume key (open time, funding time; a trade's time and id).
    static func keys(_ row: Row) -> (time: Int64, key: Int64)
    /// Once the rows are written, whether the attempt succeeded or not: what the unit records about what is now
    /// stored (klines: the outages Binance confirmed between stored candles). By default nothing.
    func completed(lastStored: Int64?) async throws
    /// Where the unit records the archive files it read and where each day's rows came from; nil (the default, and
    /// in a dry run): nothing is recorded.
    var ledger: UnitLedger? { get }
}

extension UnitWork {
    public func completed(lastStored: Int64?) async throws {}
    public var writesInFlight: Int { 1 }
    public var ledger: UnitLedger? { nil }
}

/// A unit's place in the ledger: the ledger, the table and symbol its rows go to, and the clock that dates a file's
/// reading.
public struct UnitLedger: Sendable {
    public let ledger: Ledger
    public let table: String
    public let symbol: String
    public let clock: any WallClock

    public init(ledger: Ledger, table: String, symbol: String, clock: any WallClock) {
        self.ledger = ledger
        self.table = table
        self.symbol = symbol
        self.clock = clock
    }
}

/// Rows the store accepted, per UTC day and source: what `row_sources` adds up.
final class SourceTally: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [SourceKey: Int] = [:]
    struct SourceKey: Hashable {
        let day: Int64
        let source: RowSource
    }

    func add<Row>(_ batch: [Row], _ runs: [BatchWriter<Row>.SourceRun], time: (Row) -> Int64) {
        var local: [SourceKey: Int] = [:]
        var index = 0
        for run in runs {
            var current: SourceKey?, n = 0
            for row in batch[index..<min(batch.count, index + run.count)] {
                let day = KlineInterval.d1.openTime(containing: time(row))
                if current?.day != day {
                    if let current { local[current, default: 0] += n }
                    (current, n) = (SourceKey(day: day, source: run.source), 0)
                }
                n += 1
            }
            if let current { local[current, default: 0] += n }
            index += run.count
        }
        lock.withLock { counts.merge(local, uniquingKeysWith: +) }
    }

    var days: [SourceDay] {
        lock.withLock { counts.map { SourceDay(day: $0.key.day, source: $0.key.source, rows: $0.value) } }
    }
}

/// Runs one attempt of any dataset's unit (`UnitWork`).
public enum UnitRunner {
    public static func run<Work: UnitWork>(_ work: Work, _ attempt: UnitAttempt) async throws -> UnitOutcome {
        var outcome = UnitOutcome()
        guard let plan = try await work.plan(attempt, outcome: &outcome) else { return outcome }
        let tally = work.ledger.map { _ in SourceTally() }
        var accepted: (@Sendable ([Work.Row], [BatchWriter<Work.Row>.SourceRun]) -> Void)?
        if let tally {
            accepted = { @Sendable (batch: [Work.Row], runs: [BatchWriter<Work.Row>.SourceRun]) in
                tally.add(batch, runs, time: { (row: Work.Row) in Work.keys(row).time })
            }
        }
        let writer = BatchWriter<Work.Row>(batchSize: work.batchSize, inFlight: work.writesInFlight, accepted: accepted) { try await work.write($0) }
        var failure: (any Error)?
        do {
            try await work.fetch(plan, into: writer, outcome: &outcome)
        } catch {
            failure = error
        }
        do {
            outcome = try await complete(writer, failure: failure, outcome: outcome, keys: Work.keys)
        } catch let failure as UnitFailure {
            try? await work.completed(lastStored: failure.partial.lastTime)
            try? await record(work, failure.partial, tally, failed: true)
            throw failure
        }
        try await work.completed(lastStored: outcome.lastTime)
        do { try await record(work, outcome, tally, failed: false) } catch { throw UnitFailure(underlying: error, partial: outcome) }
        return outcome
    }

    /// Records the files read and the rows' sources, once the rows are written. After a failure, only files whose rows
    /// were all written are recorded (a retry reads the others again).
    static func record<Work: UnitWork>(_ work: Work, _ outcome: UnitOutcome, _ tally: SourceTally?, failed: Bool) async throws {
        guard let unit = work.ledger else { return }
        let files = outcome.ledgerFiles.filter { file in
            guard failed, let last = file.lastRowTime else { return true }
            return outcome.lastTime.map { last <= $0 } ?? false
        }
        try await unit.ledger.record(files: files)
        try await unit.ledger.record(table: unit.table, symbol: unit.symbol, days: tally?.days ?? [])
    }
}

/// Ends a unit's run: whatever happened, what was fetched and checked is written (unless the write itself failed);
/// then a cancellation makes the outcome "interrupted", any other failure becomes a `UnitFailure` carrying what was
/// done, and success returns the outcome. `keys` gives a row's time and resume key (see `UnitOutcome.resumeAfter`).
func complete<Row: Sendable>(_ writer: BatchWriter<Row>, failure: (any Error)?, outcome: UnitOutcome,
                             keys: (Row) -> (time: Int64, key: Int64)) async throws -> UnitOutcome {
    var outcome = outcome
    var failure = failure
    do {
        try await writer.finish()
    } catch {
        if failure == nil || failure is CancellationError { failure = error }
    }
    outcome.written = max(0, await writer.written - outcome.rewritten)
    if let first = await writer.firstFlushed { outcome.firstTime = keys(first).time }
    if let last = await writer.lastFlushed { (outcome.lastTime, outcome.resumeAfter) = keys(last) }
    if failure == nil, outcome.archiveOnly ? outcome.archiveLacked > 0 || outcome.unreadFileCount > 0
        : outcome.archiveUnreachable && outcome.archiveLacked > 0 {
        // What the run could not get is not "ok": archive-only mode takes nothing from REST, and what only a file holds
        // (metrics older than REST keeps) is not Binance's to lack while its host cannot be reached. The unit fails
        // (exit 1), naming what is missing and why.
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

