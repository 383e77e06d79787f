import StoreKit
import Telemetry

/// Collects rows into batches of `DB_BATCH_SIZE` and writes each batch with one call (for klines: one atomic,
/// idempotent upsert statement).
///
/// `inFlight` batches (one by default) may be written while the next one fills: `append` waits for the oldest write
/// before starting another past that, so a slow database slows fetching instead of filling memory (at most
/// `inFlight + 1` batches are held). Writes are counted, and `firstFlushed`/`lastFlushed` move, in the order the
/// batches were made, whatever order they finish in.
/// Writes run in unstructured tasks on purpose: when a run is cancelled (SIGTERM), what was fetched is still
/// flushed by `finish()`.
public actor BatchWriter<Row: Sendable> {
    public let batchSize: Int
    private let write: @Sendable ([Row]) async throws -> Int
    private var buffer: [Row] = []
    private var inFlight: [(task: Task<Int, any Error>, batch: [Row], sources: [SourceRun])] = []
    private let maxInFlight: Int
    /// Where the rows now appended come from (the archive walk says), kept beside the buffer as runs.
    private var source: RowSource = .rest
    private var sources: [SourceRun] = []
    /// Told of each batch the store accepted, with where its rows came from (the unit's `row_sources` tally).
    private let accepted: (@Sendable ([Row], [SourceRun]) -> Void)?

    /// `count` rows in a row from one source.
    public struct SourceRun: Sendable, Equatable {
        public let source: RowSource
        public var count: Int
    }

    /// Rows confirmed written (none in a dry run), and batches.
    public private(set) var written = 0
    public private(set) var batches = 0
    /// The first and last rows of the batches the store accepted (in a dry run: took and discarded), in order: where
    /// a retry of the unit resumes, and what the summary reports as stored.
    public private(set) var firstFlushed: Row?
    public private(set) var lastFlushed: Row?

    /// `write` stores one batch and returns how many rows it wrote.
    public init(batchSize: Int, inFlight: Int = 1, accepted: (@Sendable ([Row], [SourceRun]) -> Void)? = nil,
                write: @escaping @Sendable ([Row]) async throws -> Int) {
        self.accepted = accepted
        self.batchSize = max(1, batchSize)
        maxInFlight = max(1, inFlight)
        self.write = write
        buffer.reserveCapacity(self.batchSize)
    }

    /// Says where the rows appended from now on come from.
    public func setSource(_ source: RowSource) { self.source = source }

    /// Adds rows; writes every full batch.
    public func append(_ rows: [Row]) async throws {
        guard !rows.isEmpty else { return }
        buffer.append(contentsOf: rows)
        if let last = sources.last, last.source == source { sources[sources.count - 1].count += rows.count } else {
            sources.append(SourceRun(source: source, count: rows.count))
        }
        while buffer.count >= batchSize {
            let batch = Array(buffer.prefix(batchSize))
            buffer.removeFirst(batchSize)
            try await submit(batch, sources: takeSources(batchSize))
        }
    }

    /// The source runs of the buffer's first `count` rows, taken off.
    private func takeSources(_ count: Int) -> [SourceRun] {
        var left = count, taken: [SourceRun] = []
        while left > 0, !sources.isEmpty {
            let n = min(left, sources[0].count)
            taken.append(SourceRun(source: sources[0].source, count: n))
            sources[0].count -= n
            if sources[0].count == 0 { sources.removeFirst() }
            left -= n
        }
        return taken
    }

    /// Writes what is left and waits for every write to finish.
    public func finish() async throws {
        if !buffer.isEmpty {
            let batch = buffer
            buffer.removeAll()
            try await submit(batch, sources: takeSources(batch.count))
        }
        while !inFlight.isEmpty { try await drainOldest() }
    }

    /// Waits for the oldest write. Should it fail, the others are waited for too (none is left running behind the
    /// error, whatever they do) and the first error is thrown.
    private func drainOldest() async throws {
        let (task, batch, sources) = inFlight.removeFirst()
        do {
            written += try await task.value
        } catch {
            let rest = inFlight
            inFlight.removeAll()
            for other in rest { _ = try? await other.task.value }
            throw error
        }
        batches += 1
        if firstFlushed == nil { firstFlushed = batch.first }
        lastFlushed = batch.last
        accepted?(batch, sources)
    }

    private func submit(_ batch: [Row], sources: [SourceRun]) async throws {
        while inFlight.count >= maxInFlight { try await drainOldest() }
        guard !batch.isEmpty else { return }
        let write = write
        inFlight.append((Task { try await write(batch) }, batch, sources))
    }
}
