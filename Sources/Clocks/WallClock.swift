import Foundation

/// Wall-clock time in Unix milliseconds, and waiting for a moment of it.
///
/// Binance's weight windows and candle boundaries are wall-clock moments, so decisions take the time from this
/// protocol; tests inject `ManualClock` and move time by hand instead of sleeping.
public protocol WallClock: Sendable {
    /// Now, in Unix milliseconds.
    func now() -> Int64
    /// Returns once `now() >= deadline`; throws `CancellationError` if the task is cancelled first.
    func sleep(until deadline: Int64) async throws
}

/// The system clock.
public struct SystemClock: WallClock {
    public init() {}

    public func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    public func sleep(until deadline: Int64) async throws {
        let delay = deadline - now()
        if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000) }
    }
}

/// A clock that moves only when told to. Sleepers wake when `advance` or `set` passes their deadline.
public final class ManualClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Int64
    private var sleepers: [(deadline: Int64, id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextID: UInt64 = 0

    public init(now: Int64) { current = now }

    public func now() -> Int64 { lock.withLock { current } }

    /// Number of tasks waiting on this clock (lets a test wait until work is parked before moving time).
    public var sleeperCount: Int { lock.withLock { sleepers.count } }

    /// Deadlines of the waiting tasks, earliest first.
    public var pendingDeadlines: [Int64] { lock.withLock { sleepers.map(\.deadline).sorted() } }

    public func advance(by milliseconds: Int64) { set(now() + milliseconds) }

    /// Runs `operation`, moving time forward by `step` whenever something waits on this clock, until it returns:
    /// backoffs and cool-downs pass at once, however many there are (even none).
    public func drive<T: Sendable>(step: Int64, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await operation() }
        let driver = Task {
            while !Task.isCancelled {
                if sleeperCount > 0 { advance(by: step) }
                // Pace the loop so it never starves the work it drives.
                try? await Task.sleep(nanoseconds: 200_000)
            }
        }
        defer { driver.cancel() }
        return try await task.value
    }

    public func set(_ time: Int64) {
        let due: [CheckedContinuation<Void, any Error>] = lock.withLock {
            current = max(current, time)
            let ready = sleepers.filter { $0.deadline <= current }
            sleepers.removeAll { $0.deadline <= current }
            return ready.map(\.continuation)
        }
        due.forEach { $0.resume() }
    }

    public func sleep(until deadline: Int64) async throws {
        let id: UInt64 = lock.withLock { nextID += 1; return nextID }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Under the lock that `onCancel` takes too: a cancellation that came before this point is seen here,
                // one after it finds the sleeper. Either way the sleeper never waits forever.
                let wake: Bool? = lock.withLock {
                    if Task.isCancelled { return false }
                    if deadline <= current { return true }
                    sleepers.append((deadline, id, continuation))
                    return nil
                }
                switch wake {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            let sleeper = lock.withLock { () -> CheckedContinuation<Void, any Error>? in
                guard let i = sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return sleepers.remove(at: i).continuation
            }
            sleeper?.resume(throwing: CancellationError())
        }
    }
}
