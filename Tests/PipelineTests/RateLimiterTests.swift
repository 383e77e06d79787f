import BinanceAPI
import Clocks
import Pipeline
import Testing

@Suite("Weight budget and rate limiter", .timeLimit(.minutes(2)))
struct RateLimiterTests {
    let rule = RateLimitRule(limit: 10, windowMilliseconds: 60_000)

    @Test("grants weight until the window is spent, then waits for the next window")
    func spendsWholeBudget() {
        var budget = WeightBudget(rule: rule)
        #expect(budget.reserve(5, now: 60_000) == .granted(window: 60_000))
        #expect(budget.reserve(5, now: 61_000) == .granted(window: 60_000))
        #expect(budget.reserve(1, now: 62_000) == .waitUntil(120_000))
        #expect(budget.reserve(1, now: 120_000) == .granted(window: 120_000))
    }

    @Test("keeps in step with the server's X-MBX-USED-WEIGHT count, never below its own")
    func followsServer() {
        var budget = WeightBudget(rule: rule)
        _ = budget.reserve(2, now: 0)
        budget.observe(usedWeight: 9, grantedIn: 0)
        #expect(budget.serverUsed == 9)
        budget.observe(usedWeight: 1, grantedIn: 0)
        #expect(budget.serverUsed == 9)
        #expect(budget.reserve(2, now: 1) == .waitUntil(60_000))
        // A count from an old window does not touch the current one.
        _ = budget.reserve(1, now: 60_000)
        budget.observe(usedWeight: 10, grantedIn: 0)
        #expect(budget.serverUsed == 0 && budget.used == 1)
    }

    @Test("weight granted at the very end of a window also counts in the next one, where Binance may see it")
    func boundaryCarry() {
        var budget = WeightBudget(rule: rule)  // 10 per minute; the last second is the guard
        #expect(budget.reserve(4, now: 59_500) == .granted(window: 0))
        #expect(budget.reserve(7, now: 60_000) == .waitUntil(120_000))
        #expect(budget.reserve(6, now: 60_000) == .granted(window: 60_000))
    }

    @Test("adopting the published rule keeps the weight already spent in the current window")
    func ruleChange() {
        var budget = WeightBudget(rule: RateLimitRule(limit: 2400, windowMilliseconds: 60_000))
        _ = budget.reserve(1, now: 10_500)
        budget.update(rule: RateLimitRule(limit: 20, windowMilliseconds: 1_000), now: 10_600)
        #expect(budget.used == 1)
        #expect(budget.windowStart == 10_000)
    }

    @Test("a shard spends only its share, and never past what the whole IP has left")
    func share() {
        var budget = WeightBudget(rule: RateLimitRule(limit: 2400, windowMilliseconds: 60_000), share: 0.25)
        #expect(budget.ownLimit == 600)
        #expect(budget.reserve(600, now: 0) == .granted(window: 0))
        #expect(budget.reserve(1, now: 1) == .waitUntil(60_000))
        var other = WeightBudget(rule: RateLimitRule(limit: 2400, windowMilliseconds: 60_000), share: 0.5)
        other.observe(usedWeight: 0, grantedIn: .min)
        _ = other.reserve(1, now: 0)
        other.observe(usedWeight: 2390, grantedIn: 0)  // the other pods spent most of the IP's budget
        #expect(other.reserve(10, now: 1) == .waitUntil(60_000))
        // Room stays for the other pods' requests in flight (here one of the heaviest weight sent, 1).
        #expect(other.reserve(9, now: 1) == .granted(window: 0))
    }

    @Test("a process started while another spends the IP's budget starts from its first answer's count, also when the published rule differs")
    func startsFromServerCount() {
        var budget = WeightBudget(rule: RateLimitRule(limit: 2400, windowMilliseconds: 60_000), concurrency: 4)
        #expect(budget.reserve(1, now: 1_000) == .granted(window: 0))  // exchangeInfo
        budget.observe(usedWeight: 2_300, grantedIn: 0)
        #expect(budget.othersUsed == 2_299)
        budget.update(rule: RateLimitRule(limit: 2_000, windowMilliseconds: 60_000), now: 1_100)
        #expect(budget.serverUsed == 2_000 && budget.othersUsed == 2_000)
        #expect(budget.reserve(2, now: 1_200) == .waitUntil(60_000))
        // The next window starts clean: the other process's count is learnt again from the answers.
        #expect(budget.reserve(2, now: 60_000) == .granted(window: 60_000))
        #expect(budget.othersUsed == 0)
    }

    @Test("a process spending the whole window still leaves room for a newcomer's first request (its exchangeInfo)")
    func roomForANewcomer() {
        var budget = WeightBudget(rule: RateLimitRule(limit: 40, windowMilliseconds: 4_000), concurrency: 4, newcomerRoom: 1)
        var granted = 0
        while case .granted = budget.reserve(2, now: 10) { granted += 1 }
        #expect(granted == 19 && budget.used == 38, "39 of 40 may be ours; the 40th is the newcomer's")
        #expect(budget.reserve(1, now: 10) == .granted(window: 0))
        #expect(budget.reserve(1, now: 10) == .waitUntil(4_000))
        // The newcomer: its exchangeInfo fits, and its answer says the window is spent, so it waits instead of a 429.
        var newcomer = WeightBudget(rule: RateLimitRule(limit: 40, windowMilliseconds: 4_000), concurrency: 4, newcomerRoom: 1)
        #expect(newcomer.reserve(1, now: 20) == .granted(window: 0))
        newcomer.observe(usedWeight: 40, grantedIn: 0)
        #expect(newcomer.reserve(2, now: 21) == .waitUntil(4_000))
    }

    @Test("with another process on the IP, room is left for its requests in flight: workers x heaviest weight")
    func marginForOthers() {
        var budget = WeightBudget(rule: RateLimitRule(limit: 100, windowMilliseconds: 60_000), concurrency: 4)
        #expect(budget.reserve(2, now: 0) == .granted(window: 0))
        budget.observe(usedWeight: 60, grantedIn: 0)  // 58 are someone else's
        var granted = 1
        while case .granted = budget.reserve(2, now: 1) { granted += 1 }
        // 58 theirs + ours <= 100 - 4 x 2: ours stops at 34, i.e. 17 requests of 2.
        #expect(granted == 17 && budget.used == 34)
        // Answers of its own arriving out of order (the server counted 34 of ours) are not someone else's weight.
        var reordered = WeightBudget(rule: RateLimitRule(limit: 100, windowMilliseconds: 60_000), concurrency: 4)
        for _ in 0..<3 { _ = reordered.reserve(2, now: 0) }
        reordered.observe(usedWeight: 6, grantedIn: 0)
        #expect(reordered.othersUsed == 0)
        // Alone on the IP, the whole limit is ours.
        var alone = WeightBudget(rule: RateLimitRule(limit: 100, windowMilliseconds: 60_000), concurrency: 4)
        var own = 0
        while case .granted = alone.reserve(2, now: 1) {
            own += 1
            alone.observe(usedWeight: alone.used, grantedIn: 0)
        }
        #expect(own == 50)
    }

    @Test("after a 429 every request waits for Retry-After")
    func holds() {
        var budget = WeightBudget(rule: rule)
        budget.hold(until: 30_000)
        #expect(budget.reserve(1, now: 1_000) == .waitUntil(30_000))
        #expect(budget.reserve(1, now: 30_000) == .granted(window: 0))
    }

    @Test("the limiter holds tasks on its clock and lets them go when the window turns")
    func limiterWaits() async throws {
        let clock = ManualClock(now: 0)
        let limiter = RateLimiter(market: .futures, rule: rule, clock: clock)
        _ = try await limiter.acquire(weight: 10)
        let waiting = Task { try await limiter.acquire(weight: 4) }
        while clock.sleeperCount == 0 { await Task.yield() }
        #expect(clock.pendingDeadlines == [60_000])
        clock.set(60_000)
        #expect(try await waiting.value == 60_000)
        #expect(await limiter.weightGranted == 14)
        #expect(await limiter.waitedMilliseconds == 60_000)
    }

    @Test("a 429 answer holds every task until Retry-After has passed")
    func limiterHoldsOn429() async throws {
        let clock = ManualClock(now: 0)
        let limiter = RateLimiter(market: .futures, rule: rule, clock: clock)
        let window = try await limiter.acquire(weight: 1)
        await limiter.record(headers: WeightHeaders(usedWeight: [60_000: 10], retryAfterSeconds: 5), status: 429, grantedIn: window)
        let waiting = Task { try await limiter.acquire(weight: 1) }
        while clock.sleeperCount == 0 { await Task.yield() }
        #expect(clock.pendingDeadlines == [5_000])
        clock.set(5_000)
        // Still the same window, which the server says is spent: wait for the next one.
        while clock.pendingDeadlines != [60_000] { await Task.yield() }
        clock.set(60_000)
        #expect(try await waiting.value == 60_000)
    }
}
