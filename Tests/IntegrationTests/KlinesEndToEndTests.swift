import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import StoreKit
import Telemetry
import TestSupport
import Testing

/// `binance-extractor klines` against a real MariaDB (and, for what every store must do, a real PostgreSQL) and the
/// bundled Binance simulator.
@Suite("klines end to end", .serialized, .timeLimit(.minutes(3)))
struct KlinesEndToEndTests {
    static let minute: Int64 = 60_000
    /// 2024-03-01T12:05:30Z: a fixed "now" so the data is the same on every run.
    static let now: Int64 = 1_709_294_400_000 + 5 * 60_000 + 30_000

    struct Run {
        let status: Int32
        let output: String
        let errors: String
        /// The JSON summary line.
        var summary: [String: Any] {
            let line = output.split(separator: "\n").last.map(String.init) ?? "{}"
            return ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["summary"] as? [String: Any] ?? [:]
        }
    }

    static func extract(_ args: [String], sim: SimulatorFixture, db: TestDatabase?, clock: any WallClock) async -> Run {
        await extract(args, api: sim.baseURL, uri: db?.uriText, clock: clock)
    }

    /// The same on either store, named by `--database-url`.
    static func extract(_ args: [String], sim: SimulatorFixture, store: TestStore, clock: any WallClock) async -> Run {
        await extract(args + ["--database-url", store.urlText], api: sim.baseURL, uri: nil, clock: clock)
    }

    /// Runs `binance-extractor klines` in this process; telemetry is off (it has its own tests).
    static func extract(_ args: [String], api: String, uri: String?, clock: any WallClock,
                        onShutdownDeadline: @escaping @Sendable () -> Void = {}) async -> Run {
        let out = LineSink(), err = LineSink()
        var arguments = ["klines", "--api-url", api] + args
        if let uri { arguments += ["--mysql-uri", uri] }
        let status = await ExtractorCLI.run(arguments: arguments, environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_KLINES_SOURCE": "rest"],
                                            context: RunContext(clock: clock, output: out, errors: err,
                                                                onShutdownDeadline: onShutdownDeadline))
        return Run(status: status, output: out.text, errors: err.text)
    }

    /// Asserts the table holds exactly what the simulator serves for the range, field by field.
    static func expectExact(_ db: TestDatabase, _ sim: SimulatorFixture, table: KlineTable, symbol: String,
                            from start: Int64, through end: Int64, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await expectExact(TestStore(db), sim, table: table, symbol: symbol, from: start, through: end, sourceLocation: sourceLocation)
    }

    static func expectExact(_ store: TestStore, _ sim: SimulatorFixture, table: KlineTable, symbol: String,
                            from start: Int64, through end: Int64, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let expected = await sim.simulator.expectedKlines(symbol: symbol, interval: table.interval, series: table.series, from: start, through: end)
        let stored = try await store.klines(table: table, symbol: symbol)
        #expect(stored.count == expected.count, "\(symbol) \(table): \(stored.count) stored, \(expected.count) served",
                sourceLocation: sourceLocation)
        for (s, e) in zip(stored, expected) where !s.matches(e) {
            Issue.record("\(symbol) \(table) at \(UTCCalendar.iso8601(e.openTime)): stored \(s), served \(e)", sourceLocation: sourceLocation)
            return
        }
    }

    @Test("a first run fills every table exactly; a second run asks only for what is new", arguments: StoreKind.allCases)
    func firstAndSecondRun(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let symbols = ["BTCUSDT", "ETHUSDT", "PEPEUSDT"]

        let first = await Self.extract(["--timeframes", "15m,1h", "--symbols", symbols.joined(separator: ",")],
                                       sim: sim, store: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        let lookbackStart = Self.now - 24 * 3_600_000
        for symbol in symbols {
            for interval in [KlineInterval.m15, .h1] {
                try await Self.expectExact(db, sim, table: KlineTable(market: .futures, interval: interval), symbol: symbol,
                                           from: interval.openTime(containing: lookbackStart), through: Self.now)
            }
        }
        // 96 closed 15m candles and 24 closed 1h candles per symbol; the open 12:00 candles are not stored.
        #expect(try await db.count("klines_m15") == 3 * 96)
        #expect(try await db.count("klines_h1") == 3 * 24)
        #expect(first.summary["written"] as? Int == 3 * 96 + 3 * 24)

        clock.advance(by: 45 * Self.minute)
        await sim.simulator.resetStatistics()
        let second = await Self.extract(["--timeframes", "15m,1h", "--symbols", symbols.joined(separator: ",")],
                                        sim: sim, store: db, clock: clock)
        #expect(second.status == 0, "\(second.errors)")
        let stats = await sim.simulator.statistics
        // One page per unit (6 units) plus one exchangeInfo.
        #expect(stats.klinesRequests == 6)
        #expect(stats.requests == 7)
        #expect(second.summary["requests"] as? Int == 7)
        for symbol in symbols {
            try await Self.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m15), symbol: symbol,
                                       from: KlineInterval.m15.openTime(containing: lookbackStart), through: clock.now())
        }
        #expect(try await db.count("klines_m15") == 3 * 99)
    }

    @Test("a candle stored while still open is corrected by a later run", arguments: StoreKind.allCases)
    func openCandleCorrected(store kind: StoreKind) async throws {
        // The extractor's clock runs 20 minutes ahead of Binance's: it takes the open 12:00 candle for closed.
        let binance = ManualClock(now: Self.now)
        let ahead = ManualClock(now: Self.now + 20 * Self.minute)
        let sim = try await SimulatorFixture.start(clock: binance)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let table = KlineTable(market: .futures, interval: .m15)
        let openCandle = KlineInterval.m15.openTime(containing: Self.now)

        let first = await Self.extract(["--timeframes", "15m", "--symbols", "BTCUSDT"], sim: sim, store: db, clock: ahead)
        #expect(first.status == 0, "\(first.errors)")
        let partial = try await db.klines(table: table, symbol: "BTCUSDT").last
        #expect(partial?.openTime == openCandle)

        binance.set(Self.now + 20 * Self.minute)
        ahead.set(Self.now + 21 * Self.minute)
        let final = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .m15, from: openCandle, through: openCandle)
        #expect(final.count == 1)
        #expect(partial.map { !$0.matches(final[0]) } == true, "the stored open candle should differ from its final values")

        let second = await Self.extract(["--timeframes", "15m", "--symbols", "BTCUSDT"], sim: sim, store: db, clock: ahead)
        #expect(second.status == 0, "\(second.errors)")
        let corrected = try await db.klines(table: table, symbol: "BTCUSDT")
            .first { $0.openTime == openCandle }
        #expect(corrected?.matches(final[0]) == true)
    }

    @Test("a dry run fetches and validates but writes nothing", arguments: StoreKind.allCases)
    func dryRun(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await Self.extract(["--timeframes", "1h", "--symbols", "BTCUSDT,ETHUSDT", "--dry-run"], sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.summary["fetched"] as? Int == 48)
        #expect(run.summary["written"] as? Int == 0)
        #expect(run.summary["dry_run"] as? Bool == true)
        #expect(try await db.tableCount() == 0, "a dry run must not even create tables")
    }

    @Test("an unknown symbol fails its unit with a clear message while the others succeed (exit 1)")
    func unknownSymbol() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await Self.extract(["--timeframes", "1h", "--symbols", "BTCUSDT,NOPEUSDT,ETHUSDT"], sim: sim, db: db, clock: clock)
        #expect(run.status == 1)
        #expect(run.output.contains("\"symbol\":\"NOPEUSDT\",\"timeframe\":\"1h\",\"status\":\"failed\""))
        #expect(run.output.contains("code -1121: Invalid symbol."))
        let stats = await sim.simulator.statistics
        #expect(stats.byStatus["400"] == 1, "an unknown symbol is not retried")
        #expect(try await db.count("klines_h1") == 48)
    }

    @Test("with the budget squeezed, a backfill spanning several windows ends with zero 429")
    func squeezedBudget() async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.setWeightLimit(20, windowSeconds: 1)
        // One clock for the simulator and the extractor, moved on whenever the run waits for the next window: the
        // windows are the same on both sides, whatever the machine's load.
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(configuration: configuration, clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        // 4 symbols x 3 days of 1m = 36 pages of weight 2 = 72 weight: four windows of 20.
        let run = try await clock.drive(step: 50) {
            await Self.extract(["--timeframes", "1m", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT",
                                "--start", "2024-01-01", "--end", "2024-01-04"], sim: sim, db: db, clock: clock)
        }
        #expect(run.status == 0, "\(run.errors)")
        let stats = await sim.simulator.statistics
        #expect(stats.tooManyRequests == 0)
        #expect(stats.bans == 0)
        #expect(stats.weightUsed >= 72)
        #expect(try await db.count("klines_m1") == 4 * 3 * 1440)
        try await Self.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m1), symbol: "SOLUSDT",
                                   from: UTCCalendar.parse("2024-01-01")!, through: UTCCalendar.parse("2024-01-04")! - 1)
    }

    @Test("spot rows go to their own tables and never collide with futures rows")
    func spotTables() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let futures = await Self.extract(["--timeframes", "1h", "--symbols", "BTCUSDT"], sim: sim, db: db, clock: clock)
        let spot = await Self.extract(["--timeframes", "1h", "--symbols", "BTCUSDT", "--market", "spot"], sim: sim, db: db, clock: clock)
        #expect(futures.status == 0 && spot.status == 0, "\(futures.errors) \(spot.errors)")
        #expect(try await db.count("klines_h1") == 24)
        #expect(try await db.count("spot_klines_h1") == 24)
    }
}

@Suite("Recovering from Binance faults", .serialized, .timeLimit(.minutes(3)))
struct FaultRecoveryTests {
    @Test("transient faults are retried and the data still ends exact", arguments: [
        FaultKind.http500, .http503, .html502, .truncate, .reset,
    ])
    func retriesTransientFaults(kind: FaultKind) async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: kind, every: 2, count: 2)]
        let clock = ManualClock(now: KlinesEndToEndTests.now)
        let sim = try await SimulatorFixture.start(configuration: configuration, clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        // Retries wait on the clock: it is moved along so no test sleeps through a backoff.
        let run = try await clock.drive(step: 1_000) {
            await KlinesEndToEndTests.extract(["--timeframes", "5m", "--symbols", "BTCUSDT", "--lookback-hours", "240",
                                               "--unit-retries", "0"], sim: sim, db: db, clock: clock)
        }
        #expect(run.status == 0, "\(run.errors)")
        let stats = await sim.simulator.statistics
        #expect(stats.faultsInjected == 2)
        #expect(run.summary["retries"] as? Int == 2)
        let start = KlineInterval.m5.openTime(containing: KlinesEndToEndTests.now - 240 * 3_600_000)
        try await KlinesEndToEndTests.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m5), symbol: "BTCUSDT",
                                                  from: start, through: clock.now())
    }
}
