import Foundation

/// A fixed set of resources (pooled connections, HTTP workers) handed out one task at a time.
///
/// `acquire()` suspends, in FIFO order, while every resource is out; it never blocks a thread. A task cancelled
/// while waiting leaves the queue with `CancellationError`, so no pool exhaustion can hang a cancelled run.
public final class ResourcePool<Resource: AnyObject & Sendable>: @unchecked Sendable {
    private enum Outcome { case got(Resource), cancelled, queued }
    private typealias Waiter = (id: UInt64, continuation: CheckedContinuation<Resource, any Error>)
    private let lock = NSLock()
    private var free: [Resource]
    private var waiters: [Waiter] = []
    private var nextWaiter: UInt64 = 0
    /// Every resource, in or out.
    public let all: [Resource]

    public init(_ resources: [Resource]) {
        precondition(!resources.isEmpty, "a pool needs at least one resource")
        free = resources.reversed()
        all = resources
    }

    public func acquire() async throws -> Resource {
        try Task.checkCancellation()
        let id: UInt64 = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Resource, any Error>) in
                let outcome: Outcome = lock.withLock {
                    if let resource = free.popLast() { return .got(resource) }
                    if Task.isCancelled { return .cancelled }
                    waiters.append((id, continuation))
                    return .queued
                }
                switch outcome {
                case .got(let resource): continuation.resume(returning: resource)
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .queued: break
                }
            }
        } onCancel: {
            let waiter: Waiter? = lock.withLock {
                guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    public func release(_ resource: Resource) {
        let waiter: Waiter? = lock.withLock {
            if waiters.isEmpty {
                free.append(resource)
                return nil
            }
            return waiters.removeFirst()
        }
        waiter?.continuation.resume(returning: resource)
    }

    /// Number of resources not handed out.
    public var available: Int { lock.withLock { free.count } }
}
