import BinanceAPI
import Foundation

/// What reaches one followed unit, in order.
public enum FollowInput: Sendable, Equatable {
    /// A kline event of the unit's stream, and when it arrived (the follower's clock).
    case kline(Kline, final: Bool, arrived: Int64)
    /// An aggregate trade of the unit's stream, and when it arrived.
    case trade(AggTrade, arrived: Int64)
    /// A (new) connection carries the unit's stream from `at` (the follower's clock): catch up from the last stored row
    /// while its events queue here.
    case connected(at: Int64)
    /// Time passed (confirmations, a final that never came).
    case tick(Int64)
}

/// One unit's queue between the connection that reads its stream and the follower that writes it: bounded, so a
/// follower held up (a long catch-up, a slow database) costs at most `capacity` events of memory. When full, the
/// oldest event goes: a lost final is noticed when a later candle arrives and fetched from REST, so dropping loses
/// time, never a candle. Ticks coalesce (one queued at a time).
public final class FollowInbox: @unchecked Sendable {
    public let capacity: Int
    private let lock = NSLock()
    private var queue: [FollowInput] = []
    private var head = 0
    private var tickQueued = false
    private var waiter: CheckedContinuation<FollowInput?, Never>?
    private var idleWaiters: [(UUID, CheckedContinuation<Void, Never>)] = []
    private var finished = false
    /// Events dropped because the queue was full.
    public private(set) var dropped = 0

    public init(capacity: Int = 10_000) { self.capacity = capacity }

    public func push(_ input: FollowInput) {
        let resume: (CheckedContinuation<FollowInput?, Never>, FollowInput)? = lock.withLock {
            guard !finished else { return nil }
            if case .tick = input {
                if tickQueued { return nil }
                tickQueued = true
            }
            if let waiter {
                self.waiter = nil
                if case .tick = input { tickQueued = false }
                return (waiter, input)
            }
            if queue.count - head >= capacity {
                if case .tick = queue[head] { tickQueued = false }
                head += 1
                dropped += 1
            }
            queue.append(input)
            if head > 4096 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return nil
        }
        resume.map { $0.0.resume(returning: $0.1) }
    }

    /// The next input; nil once the inbox is finished or the task is cancelled.
    public func next() async -> FollowInput? {
        if let input = take() { return input }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<FollowInput?, Never>) in
                var idle: [(UUID, CheckedContinuation<Void, Never>)] = []
                let ready: FollowInput?? = lock.withLock {
                    if let input = takeLocked() { return .some(input) }
                    if finished || Task.isCancelled { return .some(nil) }
                    waiter = continuation
                    swap(&idle, &idleWaiters)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
                idle.forEach { $0.1.resume() }
            }
        } onCancel: {
            let waiting: CheckedContinuation<FollowInput?, Never>? = lock.withLock {
                defer { waiter = nil }
                return waiter
            }
            waiting?.resume(returning: nil)
        }
    }

    /// Returns once the follower has taken everything pushed so far and waits for more (tests: "processed"), or once
    /// the calling task is cancelled (a follower held up elsewhere, in a backoff say, never takes more).
    public func idle() async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now: Bool = lock.withLock {
                    if Task.isCancelled || (head == queue.count && (waiter != nil || finished)) { return true }
                    idleWaiters.append((id, continuation))
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiting: CheckedContinuation<Void, Never>? = lock.withLock {
                guard let index = idleWaiters.firstIndex(where: { $0.0 == id }) else { return nil }
                return idleWaiters.remove(at: index).1
            }
            waiting?.resume()
        }
    }

    /// Ends the inbox: a waiting follower gets nil.
    public func finish() {
        var idle: [(UUID, CheckedContinuation<Void, Never>)] = []
        let waiting: CheckedContinuation<FollowInput?, Never>? = lock.withLock {
            finished = true
            swap(&idle, &idleWaiters)
            defer { waiter = nil }
            return waiter
        }
        waiting?.resume(returning: nil)
        idle.forEach { $0.1.resume() }
    }

    /// Inputs waiting.
    public var count: Int { lock.withLock { queue.count - head } }

    private func take() -> FollowInput? { lock.withLock { takeLocked() } }

    private func takeLocked() -> FollowInput? {
        guard head < queue.count else { return nil }
        let input = queue[head]
        head += 1
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
        }
        if case .tick = input { tickQueued = false }
        return input
    }
}
