import Foundation

/// A thread the project owns, for C calls that block (libcurl easy transfers, libmariadb queries).
///
/// Swift's cooperative pool has one thread per core; a blocking call parked on it stalls every task behind it.
/// Each pooled database connection and each HTTP worker gets one `BlockingThread`; async code hands it a closure
/// and awaits the result through a continuation, so the awaiting task gives its pool thread back meanwhile.
/// Work runs in submission order, one item at a time, which is also what makes a C handle owned by the thread
/// safe: only this thread ever touches it.
public final class BlockingThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var stopping = false
    private var thread: Thread?

    /// Starts the thread. `name` shows up in debuggers and `top -H`.
    public init(name: String) {
        // The thread holds `self` until `shutdown()` lets it leave its loop.
        let thread = Thread { self.loop() }
        thread.name = name
        // libcurl and libmariadb need little stack; 512 KiB keeps hundreds of threads cheap.
        thread.stackSize = 512 * 1024
        self.thread = thread
        thread.start()
    }

    /// Runs `work` on this thread and returns its result to the awaiting task.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = enqueue {
                do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
            }
            if !accepted { continuation.resume(throwing: BlockingThreadError.stopped) }
        }
    }

    /// Runs `work` on this thread without waiting for it (used for clean-up at shutdown).
    @discardableResult
    public func enqueue(_ work: @escaping () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return false }
        queue.append(work)
        condition.signal()
        return true
    }

    /// Lets queued work finish, then ends the thread. Idempotent.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                condition.unlock()
                return
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            condition.unlock()
            for work in batch { work() }
        }
    }
}

/// The thread was shut down before the work could be queued.
public enum BlockingThreadError: Error, CustomStringConvertible {
    case stopped
    public var description: String { "the worker thread has already been shut down" }
}
