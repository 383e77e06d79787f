import Clocks
import Foundation

/// Collects finished spans in a bounded queue and exports them in batches from one task.
///
/// `append` never blocks. A year's backfill makes about 10^5 HTTP request spans, more than any queue should hold
/// while a collector is slow, so a full queue sheds those first: a successful HTTP request span (`isSheddable`) is
/// dropped and counted, while the spans that say what the run did (the run, its units, database statements, archive
/// files, rate-limit waits, and every span with an error) still get in, up to `reserve` more, and push out the
/// oldest queued HTTP span once that is full too. The exporting task wakes when a batch is full or every
/// `scheduleDelay`; `shutdown` stops it and flushes what is left within a deadline.
public final class BatchSpanProcessor: @unchecked Sendable {
    public struct Report: Sendable, Equatable {
        public var exported = 0
        /// Queued, but not delivered before the deadline (or refused by the collector).
        public var lost = 0
        /// Successful HTTP request spans dropped because the queue was full.
        public var droppedRequests = 0
        /// Other spans dropped because even the reserve was full of them (a collector that takes nothing for long).
        public var droppedOther = 0

        public init(exported: Int = 0, lost: Int = 0, droppedRequests: Int = 0, droppedOther: Int = 0) {
            self.exported = exported
            self.lost = lost
            self.droppedRequests = droppedRequests
            self.droppedOther = droppedOther
        }

        public var dropped: Int { droppedRequests + droppedOther }
    }

    /// A span the queue may shed when full: an HTTP client request that succeeded. Its unit span keeps the count of
    /// requests, and a failed request is never shed.
    public static func isSheddable(_ span: FinishedSpan) -> Bool {
        span.kind == .client && span.attributes["http.request.method"] != nil && span.status?.code != .error
    }

    private let lock = NSLock()
    private var queue: [FinishedSpan] = []
    private var report = Report()
    private let capacity: Int
    private let reserve: Int
    private let batchSize: Int
    private let scheduleDelayMilliseconds: UInt64
    private let export: @Sendable ([FinishedSpan], Int64) async -> Bool
    private let clock: any WallClock
    private let timeoutMilliseconds: Int64
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private var loop: Task<Void, Never>?
    private var ticker: Task<Void, Never>?

    /// `export(batch, deadline)` returns whether the batch was delivered.
    public init(capacity: Int = 2048, reserve: Int? = nil, batchSize: Int = 512, scheduleDelayMilliseconds: UInt64 = 1000,
                timeoutMilliseconds: Int, clock: any WallClock,
                export: @escaping @Sendable ([FinishedSpan], Int64) async -> Bool) {
        self.capacity = capacity
        self.reserve = reserve ?? 4 * capacity
        self.batchSize = batchSize
        self.scheduleDelayMilliseconds = scheduleDelayMilliseconds
        self.timeoutMilliseconds = Int64(timeoutMilliseconds)
        self.clock = clock
        self.export = export
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func start() {
        let wakes = wakes
        loop = Task.detached { [self] in
            for await _ in wakes { await exportPending(until: nil) }
        }
        let delay = scheduleDelayMilliseconds
        ticker = Task.detached { [wake] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: delay * 1_000_000)
                wake.yield()
            }
        }
    }

    /// Queues a finished span; when the queue is full, sheds HTTP request spans first (see the type's comment).
    public func append(_ span: FinishedSpan) {
        let full: Bool = lock.withLock {
            if queue.count >= capacity {
                if Self.isSheddable(span) {
                    report.droppedRequests += 1
                    return true
                }
                if queue.count >= capacity + reserve {
                    guard let oldest = queue.firstIndex(where: Self.isSheddable) else {
                        report.droppedOther += 1
                        return true
                    }
                    queue.remove(at: oldest)
                    report.droppedRequests += 1
                }
            }
            queue.append(span)
            return queue.count >= batchSize
        }
        if full { wake.yield() }
    }

    /// Exports queued spans batch by batch; stops at `until` (a deadline) if given.
    private func exportPending(until hardDeadline: Int64?) async {
        while true {
            let batch: [FinishedSpan] = lock.withLock {
                let n = min(batchSize, queue.count)
                defer { queue.removeFirst(n) }
                return Array(queue.prefix(n))
            }
            guard !batch.isEmpty else { return }
            let deadline = hardDeadline ?? (clock.now() + timeoutMilliseconds)
            let delivered = clock.now() < deadline ? await export(batch, deadline) : false
            lock.withLock {
                if delivered { report.exported += batch.count } else { report.lost += batch.count }
            }
        }
    }

    /// Stops the exporting task and flushes the rest by `deadline` (default: `timeoutMilliseconds` from now).
    public func shutdown(deadline given: Int64? = nil) async -> Report {
        let deadline = given ?? (clock.now() + timeoutMilliseconds)
        ticker?.cancel()
        wake.finish()
        if let loop { await Self.wait(for: loop, until: deadline, clock: clock) }
        await exportPending(until: deadline)
        return lock.withLock { report }
    }

    /// Waits for the exporting task to end, cancelling it (which aborts its HTTP transfer) if it is still busy at
    /// `deadline`: an export that began during the run never stretches the exit past the flush deadline.
    private static func wait(for loop: Task<Void, Never>, until deadline: Int64, clock: any WallClock) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await loop.value }
            group.addTask {
                do { try await clock.sleep(until: deadline) } catch { return }
                loop.cancel()
            }
            await group.next()
            group.cancelAll()
        }
    }
}
