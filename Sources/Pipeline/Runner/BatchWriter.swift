import Telemetry

/// Collects rows into batches of `DB_BATCH_SIZE` and writes each batch with one call (for klines: one atomic,
/// idempotent upsert statement).
///
/// One batch may be in flight while the next one fills: `append` waits for the previous write before starting
/// another, so a slow database slows fetching instead of filling memory (at most two batches are held).
/// Writes run in unstructured tasks on purpose: when a run is cancelled (SIGTERM), what was fetched is still
/// flushed by `finish()`.
public actor BatchWriter<Row: Sendable> {
    public let batchSize: Int
    private let write: @Sendable ([Row]) async throws -> Int
    private var buffer: [Row] = []
    private var inFlight: (task: Task<Int, any Error>, first: Row, last: Row)?

    /// Rows confirmed written (none in a dry run), and batches.
    public private(set) var written = 0
    public private(set) var batches = 0
    /// The first and last rows of the batches the store accepted (in a dry run: took and discarded), in order: where
    /// a retry of the unit resumes, and what the summary reports as stored.
    public private(set) var firstFlushed: Row?
    public private(set) var lastFlushed: Row?

    /// `write` stores one batch and returns how many rows it wrote.
    public init(batchSize: Int, write: @escaping @Sendable ([Row]) async throws -> Int) {
        self.batchSize = max(1, batchSize)
        self.write = write
        buffer.reserveCapacity(self.batchSize)
    }

    /// Adds rows; writes every full batch.
    public func append(_ rows: [Row]) async throws {
        buffer.append(contentsOf: rows)
        while buffer.count >= batchSize {
            let batch = Array(buffer.prefix(batchSize))
            buffer.removeFirst(batchSize)
            try await submit(batch)
        }
    }

    /// Writes what is left and waits for every write to finish.
    public func finish() async throws {
        if !buffer.isEmpty {
            let batch = buffer
            buffer.removeAll()
            try await submit(batch)
        }
        try await drain()
    }

    private func drain() async throws {
        guard let (task, first, last) = inFlight else { return }
        inFlight = nil
        written += try await task.value
        batches += 1
        if firstFlushed == nil { firstFlushed = first }
        lastFlushed = last
    }

    private func submit(_ batch: [Row]) async throws {
        try await drain()
        guard let first = batch.first, let last = batch.last else { return }
        let write = write
        inFlight = (Task { try await write(batch) }, first, last)
    }
}
