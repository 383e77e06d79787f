import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import StoreKit
import Telemetry
import TestSupport
import Testing

/// `metrics` and `gaps --metrics` against binance-sim into real MariaDB and PostgreSQL: the daily archive files for
/// history, the five `/futures/data/*` endpoints for the last 30 days, stitched into one `futures_metrics` table.
@Suite("open interest and trader ratios end to end", .serialized, .timeLimit(.minutes(3)))
struct MetricsEndToEndTests {
    typealias E2E = KlinesEndToEndTests
    static let now = E2E.now  // 2024-03-01T12:05:30Z: REST keeps from 2024-01-31T12:20 on; files up to 2024-02-29

    static func cli(_ args: [String], sim: SimulatorFixture, store: TestStore, clock: ManualClock, source: String = "auto") async throws -> E2E.Run {
        try await clock.drive(step: 100) {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(
                arguments: args + ["--api-url", sim.baseURL, "--database-url", store.urlText, "--source", source],
                environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_ARCHIVE_URL": sim.baseURL],
                context: RunContext(clock: clock, output: out, errors: err))
            return E2E.Run(status: status, output: out.text, errors: err.text)
        }
    }

    /// Stored rows equal Binance's, value for value (NULL where Binance has none), from `start` through `end`.
    static func expectExact(_ store: TestStore, _ sim: SimulatorFixture, symbol: String, from start: Int64, through end: Int64,
                            except missing: Range<Int64>? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let expected = await sim.simulator.expectedMetrics(symbol: symbol, from: start, through: end).filter { !(missing?.contains($0.time) ?? false) }
        let stored = try await store.metrics(symbol: symbol)
        #expect(stored.count == expected.count, "\(symbol): \(stored.count) rows stored, \(expected.count) published", sourceLocation: sourceLocation)
        for (s, e) in zip(stored, expected) {
            let same = s.0 == e.time && zip(s.1, e.values).allSatisfy { stored, sent in
                switch (stored, sent) {
                case (nil, nil): true
                case let (text?, value?): DecimalString.compare(DecimalString(unchecked: text), value) == 0
                default: false
                }
            }
            if !same {
                Issue.record("\(symbol) at \(UTCCalendar.iso8601(e.time)): stored \(s), published \(e)", sourceLocation: sourceLocation)
                return
            }
        }
    }

    @Test("six weeks from an empty table: files for every closed day, REST for today, exact; an hour later one window per symbol",
          arguments: StoreKind.allCases)
    func filesThenREST(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await Self.cli(["metrics", "--symbols", "BTCUSDT,ETHUSDT", "--start", "2024-01-15", "--summary", "json"], sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let start = UTCCalendar.parse("2024-01-15")!
        for symbol in ["BTCUSDT", "ETHUSDT"] { try await Self.expectExact(db, sim, symbol: symbol, from: start, through: Self.now) }
        for unit in NeverStuckTests.units(run) {
            // January 15 to February 29: 46 daily files of 288 rows; today's rows (00:00 .. 12:00) from one REST window.
            #expect(unit["archive_files"] as? Int == 46 && unit["from_archive"] as? Int == 46 * 288 && unit["from_rest"] as? Int == 145, "\(unit)")
        }
        var stats = await sim.simulator.statistics
        #expect(stats.metricsRequests == 2 * 5, "one window of the five endpoints per symbol")
        #expect(stats.byStatus["400"] == nil && stats.weightUsed == 1, "weight 0; only exchangeInfo weighs")
        // Rows Binance lacks a part of are stored with NULL there, not zero.
        let nulls = try await db.query("SELECT COUNT(*) FROM futures_metrics WHERE taker_buy_sell_volume_ratio IS NULL")
        #expect((Int(nulls.first?.first.flatMap { $0 } ?? "0") ?? 0) > 0)

        clock.advance(by: 3_600_000)
        await sim.simulator.resetStatistics()
        let next = try await Self.cli(["metrics", "--symbols", "BTCUSDT,ETHUSDT"], sim: sim, store: db, clock: clock)
        #expect(next.status == 0, "\(next.errors)")
        stats = await sim.simulator.statistics
        #expect(stats.metricsRequests == 2 * 5 && stats.archiveDownloads == 0)
        try await Self.expectExact(db, sim, symbol: "BTCUSDT", from: start, through: clock.now())
    }

    @Test("a day read from its file is stored as REST stores it, whatever the file's notation (padding, exponents)", arguments: StoreKind.allCases)
    func filesEqualREST(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let fromFiles = try await TestStore.make(kind), fromREST = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await fromFiles.drop(); await fromREST.drop() } }
        let args = ["metrics", "--symbols", "BTCUSDT", "--start", "2024-02-20", "--summary", "json"]
        let auto = try await Self.cli(args, sim: sim, store: fromFiles, clock: clock)
        #expect(auto.status == 0, "\(auto.errors)")
        #expect(NeverStuckTests.units(auto).first?["archive_files"] as? Int == 10)
        let rest = try await Self.cli(args, sim: sim, store: fromREST, clock: clock, source: "rest")
        #expect(rest.status == 0, "\(rest.errors)")
        let a = try await fromFiles.query("SELECT * FROM futures_metrics ORDER BY symbol, metric_time")
        let b = try await fromREST.query("SELECT * FROM futures_metrics ORDER BY symbol, metric_time")
        let days: Int = 10 * 288 + 145
        #expect(a.count == days && b.count == days, "\(a.count) rows from files, \(b.count) from REST")
        #expect(a == b, "rows fed from files differ from rows fed by REST")
    }

    @Test("a missing or short file inside REST's 30 days is filled from REST; one older is reported and never confirmed away: gaps --metrics asks its file again, and takes it once published; coverage says so",
          arguments: StoreKind.allCases)
    func faultsAndGaps(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults([
            "BTCUSDT-metrics-2024-01-20.zip": .missing, "BTCUSDT-metrics-2024-02-10.zip": .missing,
            "BTCUSDT-metrics-2024-02-12.zip": .incomplete(rows: 100), "BTCUSDT-metrics-2024-02-14.zip": .disordered,
            "BTCUSDT-metrics-2024-02-16.zip": .wrongChecksum,
        ])
        let run = try await Self.cli(["metrics", "--symbols", "BTCUSDT", "--start", "2024-01-15", "--summary", "json"], sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.errors.contains("metrics older than REST's 30 days whose daily file Binance has not published"), "\(run.errors)")
        let lost = UTCCalendar.parse("2024-01-20")!..<UTCCalendar.parse("2024-01-21")!
        try await Self.expectExact(db, sim, symbol: "BTCUSDT", from: UTCCalendar.parse("2024-01-15")!, through: Self.now, except: lost)
        #expect(await sim.simulator.statistics.byStatus["400"] == nil, "no startTime older than 30 days was sent")

        let listed = await HistoryJobsTests.cli(["gaps", "--metrics", "--symbols", "BTCUSDT", "--dry-run", "--summary", "table"], sim: sim, store: db, clock: clock)
        #expect(listed.status == 0, "\(listed.errors)")
        #expect(listed.output.contains("holes in futures_metrics:") && listed.output.contains("2024-01-20T00:00:00.000Z .. 2024-01-20T23:55:00.000Z  288"),
                "\(listed.output)")
        // Older than REST keeps, the day only a file can hold: a file not there yet proves nothing, so nothing is confirmed.
        let filled = try await Self.cli(["gaps", "--metrics", "--symbols", "BTCUSDT"], sim: sim, store: db, clock: clock)
        #expect(filled.status == 0, "\(filled.errors)")
        #expect(try await db.confirmedGaps().isEmpty)
        var coverage = await CoverageTests.coverage([], store: db, clock: clock)
        var metrics = try #require(try CoverageTests.series(coverage.output)["futures_metrics BTCUSDT"], "\(coverage.output)")
        #expect(metrics["missing"] as? Int == 288 && metrics["confirmed_outages"] as? Int == 0 && metrics["complete"] as? Bool == false, "\(metrics)")

        // Binance publishes the day later (binance-public-data #170, #226): the next gaps run takes it from its file.
        await sim.simulator.setArchiveFaults([:])
        let later = try await Self.cli(["gaps", "--metrics", "--symbols", "BTCUSDT"], sim: sim, store: db, clock: clock)
        #expect(later.status == 0, "\(later.errors)")
        try await Self.expectExact(db, sim, symbol: "BTCUSDT", from: UTCCalendar.parse("2024-01-15")!, through: Self.now)
        coverage = await CoverageTests.coverage([], store: db, clock: clock)
        metrics = try #require(try CoverageTests.series(coverage.output)["futures_metrics BTCUSDT"], "\(coverage.output)")
        #expect(metrics["missing"] as? Int == 0 && metrics["complete"] as? Bool == true, "\(metrics)")
    }

    @Test("REST only, from 40 days back: nothing older than 30 days is asked; the rest is stored and what is older reported")
    func restOnlyNeverAsksTooOld() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(.mariadb)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await Self.cli(["metrics", "--symbols", "BTCUSDT", "--start", "2024-01-21"], sim: sim, store: db, clock: clock, source: "rest")
        #expect(run.status == 0, "\(run.errors)")
        let floor = FuturesMetrics.restFloor(now: Self.now)
        try await Self.expectExact(db, sim, symbol: "BTCUSDT", from: floor, through: Self.now)
        let stats = await sim.simulator.statistics
        #expect(stats.byStatus["400"] == nil)
        // 30 days of 288 rows in windows of 500: 18 windows of the five endpoints.
        #expect(stats.metricsRequests == 5 * Int((Self.now - floor) / 300_000 / 500 + 1), "\(stats.metricsRequests)")
        #expect(run.errors.contains("metrics older than REST's 30 days whose daily file Binance has not published"))
    }

    @Test("REST faults on the trading data endpoints (a 503, a cut body, a repeated row, a row years ahead): retried or refused whole, the data ends exact",
          arguments: StoreKind.allCases)
    func survivesRESTFaults(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .http503, every: 4, count: 2), FaultPlan(kind: .truncate, every: 6, count: 1),
                                FaultPlan(kind: .duplicate, every: 3, count: 1), FaultPlan(kind: .farFuture, every: 5, count: 1)]
        let sim = try await SimulatorFixture.start(configuration: configuration, clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await Self.cli(["metrics", "--symbols", "BTCUSDT", "--lookback-hours", "72", "--unit-retries", "3"], sim: sim, store: db,
                                     clock: clock, source: "rest")
        #expect(run.status == 0, "\(run.errors)")
        #expect(await sim.simulator.statistics.faultsInjected == 5)
        try await Self.expectExact(db, sim, symbol: "BTCUSDT", from: Self.now - 72 * 3_600_000, through: Self.now)
    }

    @Test("an exchange that keeps a day less than 30 on REST: the hours it refuses (-1130) are counted as lacked, the rest stored exactly")
    func stricterHistory() async throws {
        let clock = ManualClock(now: Self.now)
        var configuration = BinanceSimulator.Configuration()
        configuration.metricsHistoryMilliseconds = 29 * 86_400_000
        let sim = try await SimulatorFixture.start(configuration: configuration, clock: clock)
        let db = try await TestStore.make(.postgresql)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await Self.cli(["metrics", "--symbols", "BTCUSDT", "--start", "2024-01-21"], sim: sim, store: db, clock: clock, source: "rest")
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.errors.contains("Binance no longer keeps this hour of metrics on REST"), "\(run.errors)")
        let stored = try await db.metrics(symbol: "BTCUSDT")
        let first = try #require(stored.first?.0)
        #expect(first >= Self.now - 29 * 86_400_000 && first < Self.now - 29 * 86_400_000 + 3_600_000, "\(UTCCalendar.iso8601(first))")
        try await Self.expectExact(db, sim, symbol: "BTCUSDT", from: first, through: Self.now)
    }

    @Test("metrics on spot, or gaps --metrics with --timeframes, is refused by name")
    func refused() async throws {
        let clock = ManualClock(now: Self.now)
        for (args, message) in [(["metrics", "--market", "spot", "--symbols", "BTCUSDT", "--dry-run"], "USD-M futures only"),
                                (["gaps", "--metrics", "--timeframes", "1h", "--symbols", "BTCUSDT", "--mysql-uri", "mysql://u:p@127.0.0.1:1/x"], "drop --timeframes")] {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(arguments: args, environment: ["OTEL_SDK_DISABLED": "true"], context: RunContext(clock: clock, output: out, errors: err))
            #expect(status == 2 && err.text.contains(message), "\(args): \(err.text)")
        }
    }
}
