import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import StoreKit
import Telemetry
import TestSupport
import Testing

/// The gap filler, funding rates, aggregate trades and backfill from listing, on binance-sim and a real MariaDB.
@Suite("Gaps, funding, trades and listing", .serialized, .timeLimit(.minutes(3)))
struct HistoryJobsTests {
    typealias E2E = KlinesEndToEndTests
    static let minute: Int64 = 60_000
    static let now = E2E.now
    static let table = KlineTable(market: .futures, interval: .m15)

    static func cli(_ args: [String], sim: SimulatorFixture, db: TestDatabase, clock: any WallClock) async -> E2E.Run {
        await cli(args, sim: sim, store: TestStore(db), clock: clock)
    }

    /// A command on either store, named by `--database-url`.
    static func cli(_ args: [String], sim: SimulatorFixture, store: TestStore, clock: any WallClock) async -> E2E.Run {
        let out = LineSink(), err = LineSink()
        let status = await ExtractorCLI.run(arguments: args + ["--api-url", sim.baseURL, "--database-url", store.urlText],
                                            environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_KLINES_SOURCE": "rest"],
                                            context: RunContext(clock: clock, output: out, errors: err))
        return E2E.Run(status: status, output: out.text, errors: err.text)
    }

    static func delete(_ db: TestDatabase, _ symbol: String, from: Int64, through: Int64) async throws {
        try await TestStore(db).deleteKlines("klines_m15", symbol: symbol, from: from, through: through)
    }

    @Test("holes punched into a table are found exactly and filled exactly; an exchange outage is confirmed by the run that crossed it, never asked again",
          arguments: StoreKind.allCases)
    func gapFiller(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let m15 = 15 * Self.minute
        let start = KlineInterval.m15.openTime(containing: Self.now - 72 * 3_600_000)
        // Binance itself has no candles for two hours a day ago.
        let outage = KlineInterval.m15.openTime(containing: Self.now - 30 * 3_600_000)
        await sim.simulator.setOutages([outage..<(outage + 8 * m15)])
        let first = await Self.cli(["klines", "--timeframes", "15m", "--symbols", "BTCUSDT,ETHUSDT", "--lookback-hours", "72"], sim: sim, store: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        // The run that crossed the outage recorded it: Binance answered the candles on both sides of it.
        let crossed = try await db.confirmedGaps()
        #expect(crossed == ["BTCUSDT", "ETHUSDT"].map { [$0, "\(outage)", "\(outage + 7 * m15)"] })

        let a = start + 10 * m15, b = start + 100 * m15, c = start + 200 * m15
        try await db.deleteKlines("klines_m15", symbol: "BTCUSDT", from: a, through: a + 2 * m15)
        try await db.deleteKlines("klines_m15", symbol: "BTCUSDT", from: b, through: b + 9 * m15)
        try await db.deleteKlines("klines_m15", symbol: "ETHUSDT", from: c, through: c)
        let expectedHoles = [
            ("BTCUSDT", a, a + 2 * m15, 3), ("BTCUSDT", b, b + 9 * m15, 10), ("ETHUSDT", c, c, 1),
        ].sorted { ($0.0, $0.1) < ($1.0, $1.1) }

        await sim.simulator.resetStatistics()
        let listed = await Self.cli(["gaps", "--timeframe", "15m", "--symbols", "BTCUSDT,ETHUSDT", "--dry-run", "--summary", "table"], sim: sim, store: db, clock: clock)
        #expect(listed.status == 0, "\(listed.errors)")
        let lines = listed.output.split(separator: "\n").filter { $0.hasPrefix("  ") }.map { $0.trimmingCharacters(in: .whitespaces) }
        let expectedLines = expectedHoles.map { "\($0.0)  \(UTCCalendar.iso8601($0.1)) .. \(UTCCalendar.iso8601($0.2))  \($0.3) candles" }
        #expect(lines == expectedLines, "listed: \(listed.output)")
        #expect(listed.output.contains("(2 holes confirmed empty on Binance's side are not listed"), "\(listed.output)")
        #expect(await sim.simulator.statistics.klinesRequests == 0, "a dry run fetches nothing")

        let filled = await Self.cli(["gaps", "--timeframe", "15m", "--symbols", "BTCUSDT,ETHUSDT"], sim: sim, store: db, clock: clock)
        #expect(filled.status == 0, "\(filled.errors)")
        for symbol in ["BTCUSDT", "ETHUSDT"] {
            try await E2E.expectExact(db, sim, table: Self.table, symbol: symbol, from: start, through: Self.now)
        }
        let confirmed = try await db.confirmedGaps()
        #expect(confirmed.map { $0[0] } == ["BTCUSDT", "ETHUSDT"])
        #expect(confirmed.allSatisfy { $0[1] == "\(outage)" })

        // The nightly run does not ask Binance for the outage...
        await sim.simulator.resetStatistics()
        let again = await Self.cli(["gaps", "--timeframe", "15m", "--symbols", "BTCUSDT,ETHUSDT"], sim: sim, store: db, clock: clock)
        #expect(again.status == 0)
        #expect(await sim.simulator.statistics.klinesRequests == 0)
        // ... unless told to: then it asks once per symbol and confirms it again.
        let recheck = await Self.cli(["gaps", "--timeframe", "15m", "--symbols", "BTCUSDT,ETHUSDT", "--recheck"], sim: sim, store: db, clock: clock)
        #expect(recheck.status == 0)
        #expect(await sim.simulator.statistics.klinesRequests == 2)
    }

    @Test("--max-gap-days skips longer holes with a warning; --since finds a hole before the first stored candle", arguments: StoreKind.allCases)
    func gapLimits(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let start = KlineInterval.m15.openTime(containing: Self.now - 96 * 3_600_000)
        _ = await Self.cli(["klines", "--timeframes", "15m", "--symbols", "BTCUSDT", "--lookback-hours", "96"], sim: sim, store: db, clock: clock)
        let holeStart = start + 4 * 3_600_000
        try await db.deleteKlines("klines_m15", symbol: "BTCUSDT", from: holeStart, through: holeStart + 36 * 3_600_000)
        let skipped = await Self.cli(["gaps", "--timeframe", "15m", "--symbols", "BTCUSDT", "--max-gap-days", "1"], sim: sim, store: db, clock: clock)
        #expect(skipped.status == 0)
        #expect(skipped.errors.contains("hole longer than --max-gap-days skipped"))
        #expect(await sim.simulator.statistics.klinesRequests == 1, "only the first klines run asked")

        // The first two hours are missing too: with --since before them, they count as a hole.
        try await db.deleteKlines("klines_m15", symbol: "BTCUSDT", from: start, through: start + 7 * 15 * Self.minute)
        let listed = await Self.cli(["gaps", "--timeframe", "15m", "--symbols", "BTCUSDT", "--since", UTCCalendar.iso8601(start).replacingOccurrences(of: ".000Z", with: ""), "--dry-run", "--summary", "table"],
                                    sim: sim, store: db, clock: clock)
        #expect(listed.output.contains("BTCUSDT  \(UTCCalendar.iso8601(start)) .. \(UTCCalendar.iso8601(start + 7 * 15 * Self.minute))  8 candles"), "\(listed.output)")
    }

    @Test("funding rates: the first run fills exactly (negative rates, missing mark prices), the next resumes without duplicates",
          arguments: StoreKind.allCases)
    func funding(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let start = UTCCalendar.parse("2019-12-01")!
        let first = await Self.cli(["funding", "--symbols", "BTCUSDT,ETHUSDT", "--start", "2019-12-01"], sim: sim, store: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        for symbol in ["BTCUSDT", "ETHUSDT"] {
            let expected = await sim.simulator.expectedFundingRates(symbol: symbol, from: start, through: Self.now)
            let stored = try await db.fundingRates(symbol: symbol)
            #expect(stored.count == expected.count)
            #expect(zip(stored, expected).allSatisfy { s, e in
                s.0 == e.fundingTime && DecimalString.compare(DecimalString(unchecked: s.1.replacingOccurrences(of: "-", with: "")),
                                                                DecimalString(unchecked: e.fundingRate.text.replacingOccurrences(of: "-", with: ""))) == 0
                    && s.1.hasPrefix("-") == e.fundingRate.text.hasPrefix("-")
                    && (s.2 == nil) == (e.markPrice == nil)
            })
            #expect(expected.contains { $0.fundingRate.text.hasPrefix("-") } && expected.contains { $0.markPrice == nil })
        }
        clock.advance(by: 16 * 3_600_000)
        await sim.simulator.resetStatistics()
        let second = await Self.cli(["funding", "--symbols", "BTCUSDT,ETHUSDT"], sim: sim, store: db, clock: clock)
        #expect(second.status == 0, "\(second.errors)")
        #expect(await sim.simulator.statistics.fundingRequests == 2)
        let expected = await sim.simulator.expectedFundingRates(symbol: "BTCUSDT", from: start, through: clock.now())
        let stored = try await db.fundingRates(symbol: "BTCUSDT")
        #expect(stored.map(\.0) == expected.map(\.fundingTime), "every rate once, in time order")
    }

    @Test("aggregate trades: from a start time, then by id, without duplicates or holes, on both markets",
          arguments: [Market.futures, .spot], StoreKind.allCases)
    func trades(market: Market, store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let start = Self.now - 150 * Self.minute  // two and a half hours: several one-hour windows are not needed, pages are
        let first = await Self.cli(["trades", "--market", market.rawValue, "--symbols", "BTCUSDT", "--start", UTCCalendar.iso8601(start)
            .replacingOccurrences(of: ".000Z", with: "")], sim: sim, store: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        let table = TradeTable(market: market)
        var ids = try await db.tradeIds(table, symbol: "BTCUSDT")
        let firstId = try #require(ids.first?.0)
        #expect(ids.first!.1 >= start && ids.first!.1 < start + SimulatedMarket.tradeSpacingMilliseconds)
        clock.advance(by: 40 * Self.minute)
        let second = await Self.cli(["trades", "--market", market.rawValue, "--symbols", "BTCUSDT"], sim: sim, store: db, clock: clock)
        #expect(second.status == 0, "\(second.errors)")
        ids = try await db.tradeIds(table, symbol: "BTCUSDT")
        let expected = await sim.simulator.expectedAggTrades(symbol: "BTCUSDT", fromId: firstId, throughTime: clock.now())
        #expect(ids.map(\.0) == expected.map(\.id), "stored ids are not exactly the served ones")
        #expect(ids.map(\.1) == expected.map(\.time))
        let row = try await db.trade(table, id: expected[5].id)
        #expect(row.count == 3 && DecimalString.compare(DecimalString(unchecked: row[0] ?? ""), expected[5].price) == 0)
        #expect(row.count == 3 && DecimalString.compare(DecimalString(unchecked: row[1] ?? ""), expected[5].quantity) == 0)
        #expect(row.last == (expected[5].isBuyerMaker ? "1" : "0"))
    }

    @Test("trades --start/--end backfill an older range below trades already stored; times given as Unix seconds and ISO 8601 with offset",
          arguments: StoreKind.allCases)
    func tradesBackfillBelowStored(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let table = TradeTable(market: .futures)
        let recent = await Self.cli(["trades", "--symbols", "BTCUSDT", "--lookback-hours", "1"], sim: sim, store: db, clock: clock)
        #expect(recent.status == 0, "\(recent.errors)")
        let newer = try await db.tradeIds(table, symbol: "BTCUSDT")
        let newestBefore = try #require(newer.last?.0)

        let from = Self.now - 240 * Self.minute, until = Self.now - 180 * Self.minute
        // The same instants as a person types them: Unix seconds, and ISO 8601 with an offset (one hour east of UTC).
        let endText = UTCCalendar.iso8601(until + 3_600_000).replacingOccurrences(of: ".000Z", with: "+01:00")
        let backfill = await Self.cli(["trades", "--symbols", "BTCUSDT", "--start", "\(from / 1000)", "--end", endText], sim: sim, store: db, clock: clock)
        #expect(backfill.status == 0, "\(backfill.errors)")
        let ids = try await db.tradeIds(table, symbol: "BTCUSDT")
        let older = ids.filter { $0.1 < until }
        let firstId = try #require(older.first?.0)
        #expect(older.first!.1 >= from && older.first!.1 < from + SimulatedMarket.tradeSpacingMilliseconds)
        let expected = await sim.simulator.expectedAggTrades(symbol: "BTCUSDT", fromId: firstId, throughTime: until - 1)
        #expect(older.map(\.0) == expected.map(\.id), "the older range is stored exactly")
        #expect(!ids.contains { $0.1 >= until && $0.1 < newer.first!.1 }, "nothing past --end was stored")
        #expect(ids.last?.0 == newestBefore, "the newer trades are untouched, and the next resume starts after them")
        #expect(ids.count == older.count + newer.count)
    }

    @Test("funding --start/--end backfill older rates below rates already stored", arguments: StoreKind.allCases)
    func fundingBackfillBelowStored(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let recent = await Self.cli(["funding", "--symbols", "BTCUSDT", "--lookback-hours", "72"], sim: sim, store: db, clock: clock)
        #expect(recent.status == 0, "\(recent.errors)")
        let newer = try await db.fundingRates(symbol: "BTCUSDT")
        #expect(!newer.isEmpty)
        let from = UTCCalendar.parse("2020-01-01")!, until = UTCCalendar.parse("2020-03-01")!
        let backfill = await Self.cli(["funding", "--symbols", "BTCUSDT", "--start", "2020-01-01T00:00:00.000Z", "--end", "\(until)"],
                                      sim: sim, store: db, clock: clock)
        #expect(backfill.status == 0, "\(backfill.errors)")
        let stored = try await db.fundingRates(symbol: "BTCUSDT")
        let expected = await sim.simulator.expectedFundingRates(symbol: "BTCUSDT", from: from, through: until - 1)
        #expect(expected.count > 100)
        #expect(stored.filter { $0.0 < until }.map(\.0) == expected.map(\.fundingTime))
        #expect(stored.filter { $0.0 >= until }.map(\.0) == newer.map(\.0), "the newer rates are untouched")
    }

    @Test("a shard takes every n-th symbol from the i-th (--shard, or JOB_COMPLETION_INDEX with SHARD_COUNT)")
    func sharding() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        defer { Task { await sim.stop() } }
        let symbols = "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT,PEPEUSDT"
        func run(_ extra: [String], env: [String: String]) async -> String {
            let out = LineSink(), err = LineSink()
            var environment = env
            environment["OTEL_SDK_DISABLED"] = "true"
            _ = await ExtractorCLI.run(arguments: ["klines", "--timeframes", "1h", "--symbols", symbols, "--dry-run", "--api-url", sim.baseURL] + extra,
                                       environment: environment, context: RunContext(clock: clock, output: out, errors: err))
            return out.text + err.text
        }
        let flag = await run(["--shard", "1/3"], env: [:])
        // Symbols 1 and 4 of 0...5.
        #expect(flag.contains("\"symbol\":\"ETHUSDT\"") && flag.contains("\"symbol\":\"XRPUSDT\""))
        #expect(!flag.contains("\"symbol\":\"BTCUSDT\"") && !flag.contains("\"symbol\":\"SOLUSDT\"") && !flag.contains("\"symbol\":\"PEPEUSDT\""))
        #expect(flag.contains("\"own_limit\":\"800\""), "a third of 2400")
        let indexed = await run([], env: ["JOB_COMPLETION_INDEX": "2", "SHARD_COUNT": "3"])
        #expect(indexed.contains("\"symbol\":\"SOLUSDT\"") && indexed.contains("\"symbol\":\"PEPEUSDT\""))
        #expect(!indexed.contains("\"symbol\":\"ETHUSDT\""))
        #expect(indexed.contains("\"shard\":\"2/3\""))
    }

    @Test("--from-listing starts a new symbol at its listing candle; a delisted symbol fails with -1121 and keeps its data", arguments: StoreKind.allCases)
    func listing(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let listedAt = try #require(await sim.simulator.market.symbols["NEWUSDT"]?.listedAt)
        let run = await Self.cli(["klines", "--timeframes", "1h", "--symbols", "NEWUSDT", "--from-listing"], sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let stored = try await db.klines(table: KlineTable(market: .futures, interval: .h1), symbol: "NEWUSDT")
        #expect(stored.first?.openTime == listedAt)
        #expect(stored.count == Int((KlineInterval.h1.openTime(containing: Self.now) - listedAt) / 3_600_000))

        // OLDUSDT was delisted: rows stored back then stay; the unit ends with a clear message.
        try await db.execute("""
            INSERT INTO klines_h1 VALUES ('OLDUSDT', '2023-01-01 00:00:00', '2023-01-01 00:59:59.999', 1, 2, 0.5, 1.5, 10, 15, 3, 5, 7)
            """)
        let old = await Self.cli(["klines", "--timeframes", "1h", "--symbols", "OLDUSDT,NEWUSDT"], sim: sim, store: db, clock: clock)
        #expect(old.status == 1)
        #expect(old.output.contains("code -1121: Invalid symbol. (the symbol is not listed on this market: unknown, or delisted"))
        #expect(try await db.query("SELECT COUNT(*) FROM klines_h1 WHERE symbol = 'OLDUSDT'")[0][0] == "1")
    }
}
