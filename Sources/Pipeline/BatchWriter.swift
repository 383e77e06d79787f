import BinanceAPI
import Storage
import Telemetry

/// Collects one unit's klines into batches of `DB_BATCH_SIZE` rows and writes each as one idempotent upsert.
///
/// One batch may be in flight while the next one fills: `append` waits for the previous write before starting
/// another, so a slow database slows fetching instead of filling memory (at most two batches are held).
/// Writes run in unstructured tasks on purpose: when a run is cancelled (SIGTERM), what was fetched is still
/// flushed by `finish()`.
public actor BatchWriter {
    public let table: KlineTable
    public let symbol: Symbol
    public let batchSize: Int
    private let store: any KlineStoring
    private var buffer: [Kline] = []
    private var inFlight: Task<Int, any Error>?

    /// Rows confirmed written (none in a dry run), and batches.
    public private(set) var written = 0
    public private(set) var batches = 0

    public init(store: any KlineStoring, table: KlineTable, symbol: Symbol, batchSize: Int) {
        self.store = store
        self.table = table
        self.symbol = symbol
        self.batchSize = max(1, batchSize)
        buffer.reserveCapacity(self.batchSize)
    }

    /// Adds rows; writes every full batch.
    public func append(_ klines: [Kline]) async throws {
        buffer.append(contentsOf: klines)
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
        guard let task = inFlight else { return }
        inFlight = nil
        let n = try await task.value
        written += n
        batches += 1
        if n > 0 {
            RunMetrics.current?.add("binance_extractor.klines.written", Double(n), unit: "{kline}", description: "Klines written to MariaDB.",
                                    attributes: ["market": table.market.rawValue, "interval": table.interval.rawValue])
        }
    }

    private func submit(_ batch: [Kline]) async throws {
        try await drain()
        let store = store, table = table, symbol = symbol
        inFlight = Task {
            try await store.write(table: table, symbol: symbol, klines: batch)
        }
    }
}
