import BlockingThreads
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
