import BlockingThreads
import StoreKit
import Testing

final class Token: Sendable {
    let id: Int
    init(_ id: Int) { self.id = id }
}

@Suite("Resource pool", .timeLimit(.minutes(2)))
struct ResourcePoolTests {
    @Test("waiters get released resources in arrival order")
    func fifo() async throws {
        let pool = ResourcePool([Token(1)])
        let held = try await pool.acquire()
        let first = Task { try await pool.acquire().id }
        while pool.available != 0 { await Task.yield() }
        for _ in 0..<20 { await Task.yield() }
        let second = Task { try await pool.acquire().id }
        for _ in 0..<20 { await Task.yield() }
        pool.release(held)
        let a = try await first.value
        pool.release(Token(a))
        #expect(a == 1)
        #expect(try await second.value == 1)
    }

    @Test("a task cancelled while waiting leaves with CancellationError: exhaustion never hangs a cancelled run")
    func cancellation() async throws {
        let pool = ResourcePool([Token(1)])
        let held = try await pool.acquire()
        let waiter = Task { try await pool.acquire() }
        for _ in 0..<20 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        pool.release(held)
        #expect(pool.available == 1)
    }
}

/// The session pool's fault handling, as a state machine on the time it is given: no database, no clock.
@Suite("session retries")
struct SessionRetryTests {
    struct Failure: StoreFailure {
        var isConnectionLost = false
        var isTransientLock = false
        var isConfiguration = false
        var responseStatusCode: String? { nil }
    }

    @Test("a lost connection is retried with doubling waits for the reconnect window, said once; never before the server was reached")
    func reconnectWindow() {
        var retry = SessionRetry(faults: SessionFaults(reconnectWindowMilliseconds: 3_000, lockRetries: 5))
        let lost = Failure(isConnectionLost: true)
        var now: Int64 = 1_000
        var waits: [Int64] = [], firsts: [Bool] = []
        while case .reconnect(let wait, let first) = retry.next(after: lost, everReached: true, now: now) {
            waits.append(wait)
            firsts.append(first)
            now += wait
        }
        #expect(waits == [100, 200, 400, 800, 1_600])
        #expect(firsts == [true, false, false, false, false])
        var fresh = SessionRetry(faults: SessionFaults())
        #expect(fresh.next(after: lost, everReached: false, now: 0) == .fail, "a server never reached fails at once")
    }

    @Test("a lock conflict runs the statement again lockRetries times, then fails; other errors fail at once")
    func lockRetries() {
        var retry = SessionRetry(faults: SessionFaults(reconnectWindowMilliseconds: 30_000, lockRetries: 3))
        let lock = Failure(isTransientLock: true)
        let decisions = (0..<4).map { _ in retry.next(after: lock, everReached: true, now: 0) }
        #expect(decisions == [.runAgain(wait: 100, attempt: 1), .runAgain(wait: 200, attempt: 2), .runAgain(wait: 300, attempt: 3), .fail])
        var other = SessionRetry(faults: SessionFaults())
        #expect(other.next(after: Failure(isConfiguration: true), everReached: true, now: 0) == .fail)
    }
}
