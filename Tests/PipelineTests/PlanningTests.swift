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

    @Test("a run far behind moves at most the catch-up cap past the last stored candle, counted in candles")
    func catchUpCap() {
        let last = KlineInterval.m1.openTime(containing: now - 30 * day)
        let plan = RangePlanner(maxCatchUpMilliseconds: 7 * day).plan(interval: .m1, lastStored: last, now: now)
        #expect(plan.capped)
        // The requests ask up to now (so a silence is crossed); the budget stops the run after 7 days of candles.
        #expect(plan.end == now)
        let overlap = KlineInterval.m1.count(from: plan.start, to: last)
        #expect(plan.candleBudget == overlap + 7 * 1440)
    }

    @Test("the cap is never a wall: weekly and monthly units always get at least 1,000 candles, enough to reach now")
    func longCandlesCap() {
        for interval in [KlineInterval.w1, .mo1, .d1] {
            let last = interval.openTime(containing: now - 400 * day)
            let plan = RangePlanner(maxCatchUpMilliseconds: 7 * day).plan(interval: interval, lastStored: last, now: now)
            #expect(plan.end == now)
            #expect((plan.candleBudget ?? 0) >= RangePlanner.minimumCatchUpCandles, "\(interval)")
            #expect(!plan.capped, "\(interval): 400 days fit in 1,000 candles")
        }
    }

    @Test("nothing stored: weekly and monthly units start at least at the last closed candle")
    func lookbackLongCandles() {
        // 2024-01-01 is a Monday, so `now` is inside the week and the month that opened that day.
        for interval in [KlineInterval.w1, .mo1] {
            let plan = RangePlanner(lookbackMilliseconds: 24 * hour).plan(interval: interval, lastStored: nil, now: now)
            let open = interval.openTime(containing: now)
            #expect(plan.start == interval.openTime(containing: open - 1), "\(interval)")
            #expect(plan.start < open)
        }
    }

    @Test("calendar periods: months and Monday weeks are counted as Binance counts them")
    func calendar() {
        let feb = UTCCalendar.parse("2024-02-01")!, mar = UTCCalendar.parse("2024-03-01")!
        #expect(KlineInterval.mo1.firstOpenTime(atOrAfter: feb) == feb)
        #expect(KlineInterval.mo1.firstOpenTime(atOrAfter: feb + 1) == mar)
        #expect(KlineInterval.mo1.count(from: UTCCalendar.parse("2024-01-01")!, to: UTCCalendar.parse("2024-12-01")!) == 12)
        // 2024-01-03 is a Wednesday: the next weekly candle opens on Monday 2024-01-08.
        #expect(KlineInterval.w1.firstOpenTime(atOrAfter: UTCCalendar.parse("2024-01-03")!) == UTCCalendar.parse("2024-01-08")!)
        #expect(KlineInterval.w1.firstOpenTime(atOrAfter: UTCCalendar.parse("2024-01-08")!) == UTCCalendar.parse("2024-01-08")!)
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
