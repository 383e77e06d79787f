import BinanceAPI
import Pipeline
import Testing

@Suite("Range planning", .timeLimit(.minutes(2)))
struct PlanningTests {
    let hour: Int64 = 3_600_000
    let day: Int64 = 86_400_000
    let now: Int64 = 1_704_067_200_000 + 12 * 3_600_000 + 7 * 60_000 + 30_000  // 2024-01-01T12:07:30Z

    @Test("nothing stored: start LOOKBACK_HOURS ago on a candle boundary, up to now")
    func lookback() {
        let plan = RangePlanner(lookbackMilliseconds: 24 * hour).plan(interval: .m15, lastStored: nil, now: now)
        #expect(plan.origin == .lookback)
        #expect(plan.start == KlineInterval.m15.openTime(containing: now - 24 * hour))
        #expect(plan.end == now)
        #expect(!plan.capped)
    }

    @Test("resumes from the last stored candle with the candle itself and one hour of overlap")
    func resumeOverlap() {
        let last = now - 7 * 60_000 - 30_000 - 60_000  // 12:00 candle of 1m... the 11:59 one
        let plan = RangePlanner().plan(interval: .m1, lastStored: last, now: now)
        #expect(plan.origin == .resume)
        #expect(plan.start == last + 60_000 - hour)
        #expect(plan.start <= last)
        #expect(plan.end == now)
    }

    @Test("for candles of an hour or more the overlap is the last stored candle")
    func resumeLongCandles() {
        let last = KlineInterval.d1.openTime(containing: now) - day
        let plan = RangePlanner().plan(interval: .d1, lastStored: last, now: now)
        #expect(plan.start == last)
    }

    @Test("a run far behind moves at most the catch-up cap past the last stored candle")
    func catchUpCap() {
        let last = now - 30 * day
        let plan = RangePlanner(maxCatchUpMilliseconds: 7 * day).plan(interval: .h1, lastStored: KlineInterval.h1.openTime(containing: last), now: now)
        #expect(plan.capped)
        #expect(plan.end == KlineInterval.h1.openTime(containing: last) + 7 * day)
        // The next run resumes from what this one stored, so no hole is left.
        let next = RangePlanner(maxCatchUpMilliseconds: 7 * day).plan(interval: .h1, lastStored: plan.end, now: now)
        #expect(next.start <= plan.end)
    }

    @Test("--start/--end backfill exactly that range, end exclusive, never past now")
    func explicit() {
        let planner = RangePlanner(explicitStart: 1000, explicitEnd: 5000)
        let plan = planner.plan(interval: .m1, lastStored: 999_999, now: now)
        #expect(plan.origin == .explicit)
        #expect(plan.start == 1000 && plan.end == 4999)
        #expect(RangePlanner(explicitStart: now - hour, explicitEnd: now + day).plan(interval: .m1, lastStored: nil, now: now).end == now)
    }

    @Test("backoff grows exponentially, is capped, and jitters within its ceiling")
    func backoff() {
        let b = Backoff(baseMilliseconds: 100, capMilliseconds: 1000)
        #expect((0..<6).map(b.ceiling) == [100, 200, 400, 800, 1000, 1000])
        #expect(b.delay(attempt: 3, unitRandom: 0.5) == 400)
        #expect(b.delay(attempt: 3, unitRandom: 0) == 0)
    }
}
