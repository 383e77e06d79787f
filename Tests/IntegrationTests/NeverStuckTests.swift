import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import StoreKit
import TestSupport
import Testing

/// Every run moves every unit to the newest closed candle Binance has: weekly and monthly candles, long silences and
/// late listings never leave a unit re-reading the same candle run after run (binance-sim and a real MariaDB).
@Suite("No unit is ever stuck", .serialized, .timeLimit(.minutes(3)))
struct NeverStuckTests {
    typealias E2E = KlinesEndToEndTests
    static let day: Int64 = 86_400_000

    static func units(_ run: E2E.Run) -> [[String: Any]] {
        let line = run.output.split(separator: "\n").last.map(String.init) ?? "{}"
        return ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["units"] as? [[String: Any]] ?? []
    }

    @Test("1w and 1M from an empty table store the last closed candle with the default 24 h lookback")
    func longCandlesFromEmpty() async throws {
        // 2024-03-01T12:05:30Z: inside the month and the week (Monday 2024-02-26) that are still open.
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await E2E.extract(["--timeframes", "1w,1M", "--symbols", "BTCUSDT"], sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let feb = UTCCalendar.parse("2024-02-01")!, lastWeek = UTCCalendar.parse("2024-02-19")!
        let month = try await db.query("SELECT CAST(UNIX_TIMESTAMP(open_time) * 1000 AS SIGNED) FROM klines_mo1 WHERE symbol = 'BTCUSDT'")
        #expect(month.map { $0[0] } == ["\(feb)"])
        let week = try await db.query("SELECT CAST(UNIX_TIMESTAMP(open_time) * 1000 AS SIGNED) FROM klines_w1 WHERE symbol = 'BTCUSDT'")
        #expect(week.map { $0[0] } == ["\(lastWeek)"])
        for unit in Self.units(run) {
            #expect(unit["caught_up"] as? Bool == true, "\(unit)")
            #expect(unit["stalled"] as? Bool == false, "\(unit)")
        }
    }

    @Test("1M and 1w resumed over many runs reach every new closed candle; the 7-day cap is no wall")
    func longCandlesResumed() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let backfill = await E2E.extract(["--timeframes", "1M,1w", "--symbols", "BTCUSDT", "--start", "2023-01-01", "--end", "2023-06-01"],
                                         sim: sim, db: db, clock: clock)
        #expect(backfill.status == 0, "\(backfill.errors)")
        // Eight months and more later, one run without --start brings both units to now.
        for round in 0..<4 {
            let run = await E2E.extract(["--timeframes", "1M,1w", "--symbols", "BTCUSDT"], sim: sim, db: db, clock: clock)
            #expect(run.status == 0, "round \(round): \(run.errors)")
            for unit in Self.units(run) {
                #expect(unit["caught_up"] as? Bool == true, "round \(round): \(unit)")
                #expect(unit["stalled"] as? Bool == false, "round \(round): \(unit)")
            }
            for interval in [KlineInterval.mo1, .w1] {
                try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: interval), symbol: "BTCUSDT",
                                          from: interval.firstOpenTime(atOrAfter: UTCCalendar.parse("2023-01-01")!),
                                          through: clock.now())
            }
            // A month and a bit passes between runs: each run stores the new monthly and weekly candles.
            clock.advance(by: 33 * Self.day)
        }
    }

    @Test("a 10-day silence is crossed in one run, recorded as a confirmed outage, and gaps never asks for it")
    func longSilence() async throws {
        let clock = ManualClock(now: E2E.now - 12 * Self.day)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let first = await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT"], sim: sim, db: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        // Binance has nothing for 10 days from the open candle of that run on (a halt), then trades again.
        let silence = KlineInterval.h1.openTime(containing: clock.now())
        await sim.simulator.setOutages([silence..<(silence + 10 * Self.day)])
        clock.set(E2E.now)

        let run = await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT"], sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let unit = try #require(Self.units(run).first)
        #expect(unit["caught_up"] as? Bool == true, "\(unit)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: "BTCUSDT",
                                  from: KlineInterval.h1.openTime(containing: E2E.now - 12 * Self.day - 24 * 3_600_000), through: E2E.now)
        #expect(unit["last_open_time"] as? String == UTCCalendar.iso8601(KlineInterval.h1.openTime(containing: E2E.now) - 3_600_000))
        let confirmed = try await db.query("""
            SELECT CAST(UNIX_TIMESTAMP(gap_start) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(gap_end) * 1000 AS SIGNED)
            FROM kline_gaps_confirmed WHERE table_name = 'klines_h1' AND symbol = 'BTCUSDT'
            """)
        #expect(confirmed.map { $0.compactMap { $0 } } == [["\(silence)", "\(silence + 10 * Self.day - 3_600_000)"]])

        // The next run is an ordinary one, and the gap filler has nothing to ask.
        let next = await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT"], sim: sim, db: db, clock: clock)
        #expect(next.status == 0 && Self.units(next).first?["caught_up"] as? Bool == true, "\(next.output)")
        await sim.simulator.resetStatistics()
        let gaps = await HistoryJobsTests.cli(["gaps", "--timeframe", "1h", "--symbols", "BTCUSDT"], sim: sim, db: db, clock: clock)
        #expect(gaps.status == 0, "\(gaps.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 0)
    }

    @Test("a symbol listed after the lookback start is stored from its first candle")
    func listedAfterLookbackStart() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        // NEWUSDT was listed three days before today; a 7-day lookback starts four days before it.
        let run = await E2E.extract(["--timeframes", "1h", "--symbols", "NEWUSDT", "--lookback-hours", "168"], sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let listed = KlineInterval.d1.openTime(containing: E2E.now) - 3 * Self.day
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: "NEWUSDT", from: listed, through: E2E.now)
        #expect(Self.units(run).first?["first_open_time"] as? String == UTCCalendar.iso8601(listed))
        #expect(try await db.count("klines_h1") == Int((KlineInterval.h1.openTime(containing: E2E.now) - listed) / 3_600_000))
        // Before the listing there is nothing to confirm: no outage is recorded.
        #expect(try await db.query("SELECT * FROM kline_gaps_confirmed").isEmpty)
    }

    @Test("gaps --since counts calendar months: --since 2024-02-01 finds a hole from February on")
    func gapsSinceCalendarMonth() async throws {
        let clock = ManualClock(now: UTCCalendar.parse("2024-07-15")!)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let fill = await E2E.extract(["--timeframes", "1M", "--symbols", "BTCUSDT", "--start", "2024-04-01"], sim: sim, db: db, clock: clock)
        #expect(fill.status == 0, "\(fill.errors)")
        let listed = await HistoryJobsTests.cli(["gaps", "--timeframe", "1M", "--symbols", "BTCUSDT", "--since", "2024-02-01", "--dry-run", "--summary", "table"],
                                                sim: sim, db: db, clock: clock)
        #expect(listed.output.contains("BTCUSDT  2024-02-01T00:00:00.000Z .. 2024-03-01T00:00:00.000Z  2 candles"), "\(listed.output)")
    }
}
