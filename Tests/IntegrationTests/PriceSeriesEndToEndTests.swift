import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import StoreKit
import Telemetry
import TestSupport
import Testing

/// `klines --series mark|index|premium` against binance-sim into real MariaDB and PostgreSQL: each series lands exactly,
/// in tables holding only what the series has; files equal REST; resume, the open candle, gaps, coverage and dry runs
/// work as for trade klines.
@Suite("mark, index and premium index klines end to end", .serialized, .timeLimit(.minutes(3)))
struct PriceSeriesEndToEndTests {
    typealias E2E = KlinesEndToEndTests
    typealias Jobs = HistoryJobsTests
    static let now = E2E.now  // 2024-03-01T12:05:30Z
    static let priced: [PriceSeries] = [.mark, .index, .premium]

    static func tables(_ interval: KlineInterval) -> [KlineTable] {
        priced.map { KlineTable(market: .futures, interval: interval, series: $0) }
    }

    @Test("from REST: each series exactly, in tables of open/close time, OHLC and the count; the open candle left out; a second run resumes",
          arguments: StoreKind.allCases)
    func fromREST(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let symbols = ["BTCUSDT", "PEPEUSDT"]
        let first = await E2E.extract(["--series", "mark,index,premium", "--timeframes", "15m,1h", "--symbols", symbols.joined(separator: ","),
                                       "--summary", "json"], sim: sim, store: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        let lookbackStart = Self.now - 24 * 3_600_000
        for table in Self.tables(.m15) + Self.tables(.h1) {
            for symbol in symbols {
                try await E2E.expectExact(db, sim, table: table, symbol: symbol, from: table.interval.openTime(containing: lookbackStart), through: Self.now)
            }
        }
        // No column of fake zeros: the tables hold what the series have.
        let columnsSQL = kind == .mariadb
            ? "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'mark_klines_m15' ORDER BY ORDINAL_POSITION"
            : "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'mark_klines_m15' ORDER BY ordinal_position"
        let columns = try await db.query(columnsSQL).compactMap { $0[0] }
        #expect(columns == ["symbol", "open_time", "close_time", "open_price", "high_price", "low_price", "close_price", "basic_data_count"])
        // 96 closed 15m candles per series and symbol; the open 12:00 candles are not stored.
        #expect(try await db.count("mark_klines_m15") == 2 * 96)
        #expect(try await db.count("premium_klines_h1") == 2 * 24)
        #expect(try await db.count("klines_m15") == 0, "no trade klines were asked for")
        // A premium index below zero is stored as it is; a closed 15m mark candle counts 900 observations (one a second).
        let negatives = try await db.query("SELECT COUNT(*) FROM premium_klines_h1 WHERE low_price < 0")
        let negativeCount = Int(negatives.first?.first.flatMap { $0 } ?? "0") ?? 0
        #expect(negativeCount > 0)
        let counts = try await db.query("SELECT MIN(basic_data_count), MAX(basic_data_count) FROM mark_klines_m15")
        #expect(counts.first == ["900", "900"], "\(counts)")
        // The summary names each unit's series and table.
        let units = NeverStuckTests.units(first)
        #expect(units.count == 12)
        #expect(Set(units.compactMap { $0["timeframe"] as? String }).isSuperset(of: ["mark 15m", "index 1h", "premium 15m"]))
        #expect(units.contains { $0["series"] as? String == "index" && $0["table"] as? String == "index_klines_h1" })
        #expect(units.allSatisfy { $0["status"] as? String == "ok" }, "\(units)")

        // An hour later: each unit resumes from its last candle, one page each, and ends exact.
        clock.advance(by: 3_600_000)
        await sim.simulator.resetStatistics()
        let second = await E2E.extract(["--series", "mark,index,premium", "--timeframes", "15m,1h", "--symbols", symbols.joined(separator: ",")],
                                       sim: sim, store: db, clock: clock)
        #expect(second.status == 0, "\(second.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 12)
        for table in Self.tables(.m15) {
            try await E2E.expectExact(db, sim, table: table, symbol: "BTCUSDT", from: table.interval.openTime(containing: lookbackStart), through: clock.now())
        }
    }

    @Test("from the archives: markPriceKlines and premiumIndexKlines files give the rows REST gives, faults filled from REST",
          arguments: StoreKind.allCases)
    func filesEqualREST(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let fromFiles = try await TestStore.make(kind), fromREST = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await fromFiles.drop(); await fromREST.drop() } }
        // Repeated timestamps (binance-public-data #484) and a truncated day: sorted, de-duplicated, the rest from REST.
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-02-03.zip": .disordered, "BTCUSDT-1h-2024-02-05.zip": .incomplete(rows: 10)])
        let args = ["--series", "mark,index,premium", "--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-01-01", "--summary", "json"]
        let auto = try await ArchiveBackfillTests.run(args, source: "auto", sim: sim, store: fromFiles, clock: clock)
        #expect(auto.status == 0, "\(auto.errors)")
        for unit in NeverStuckTests.units(auto) {
            // January's monthly file, February's 29 daily files; 14 hours of Feb 5 and today's 12 from REST.
            #expect(unit["archive_files"] as? Int == 30, "\(unit)")
            #expect(unit["from_rest"] as? Int == 14 + 12, "\(unit)")
        }
        let downloads = await sim.simulator.statistics.archiveDownloads
        #expect(downloads == 3 * 30, "one set of files per series")
        let rest = try await ArchiveBackfillTests.run(args, source: "rest", sim: sim, store: fromREST, clock: clock)
        #expect(rest.status == 0, "\(rest.errors)")
        for table in Self.tables(.h1) {
            let select = "SELECT * FROM \(kind == .mariadb ? "`\(table.name)`" : table.name) ORDER BY symbol, open_time"
            let a = try await fromFiles.query(select), b = try await fromREST.query(select)
            let hours: Int = (31 + 29) * 24 + 12
            #expect(a.count == hours, "\(table): \(a.count) rows from files")
            #expect(a == b, "\(table): rows fed from archive files differ from rows fed by REST")
            try await E2E.expectExact(fromFiles, sim, table: table, symbol: "BTCUSDT", from: UTCCalendar.parse("2024-01-01")!, through: Self.now)
        }
    }

    @Test("gaps finds and fills a price series' holes; coverage lists its table; a dry run writes nothing", arguments: StoreKind.allCases)
    func gapsCoverageDryRun(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let dry = await E2E.extract(["--series", "index", "--timeframes", "15m", "--symbols", "BTCUSDT", "--dry-run", "--summary", "table"], sim: sim, store: db, clock: clock)
        #expect(dry.status == 0, "\(dry.errors)")
        #expect(try await db.count("index_klines_m15") == 0)

        let filled = await E2E.extract(["--series", "mark", "--timeframes", "15m", "--symbols", "BTCUSDT", "--lookback-hours", "48"],
                                       sim: sim, store: db, clock: clock)
        #expect(filled.status == 0, "\(filled.errors)")
        let start = KlineInterval.m15.openTime(containing: Self.now - 40 * 3_600_000)
        try await db.deleteKlines("mark_klines_m15", symbol: "BTCUSDT", from: start, through: start + 5 * 15 * 60_000)
        let listed = await Jobs.cli(["gaps", "--series", "mark", "--timeframes", "15m", "--symbols", "BTCUSDT", "--dry-run", "--summary", "table"], sim: sim, store: db, clock: clock)
        #expect(listed.status == 0, "\(listed.errors)")
        #expect(listed.output.contains("holes in mark_klines_m15:") && listed.output.contains("6 candles"), "\(listed.output)")
        // The trade table of the same interval is not the mark table: nothing of it is asked.
        let gaps = await Jobs.cli(["gaps", "--series", "mark", "--timeframes", "15m", "--symbols", "BTCUSDT"], sim: sim, store: db, clock: clock)
        #expect(gaps.status == 0, "\(gaps.errors)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m15, series: .mark), symbol: "BTCUSDT",
                                  from: KlineInterval.m15.openTime(containing: Self.now - 48 * 3_600_000), through: Self.now)

        let coverage = await CoverageTests.coverage([], store: db, clock: clock)
        #expect(coverage.status == 0, "\(coverage.errors)")
        let series = try CoverageTests.series(coverage.output)
        let mark = try #require(series["mark_klines_m15 BTCUSDT"], "\(series.keys.sorted())")
        #expect(mark["complete"] as? Bool == true && mark["holes"] as? Int == 0, "\(mark)")
    }

    @Test("lies (a high below its low, a repeated row, rows in reverse) and transport faults on price pages: refused or retried, the data ends exact",
          arguments: StoreKind.allCases)
    func survivesFaults(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(configuration: LyingExchangeTests.faults([
            FaultPlan(kind: .highBelowLow, every: 2, count: 1), FaultPlan(kind: .duplicate, every: 3, count: 1),
            FaultPlan(kind: .descending, every: 5, count: 1), FaultPlan(kind: .http503, every: 4, count: 2), FaultPlan(kind: .truncate, every: 7, count: 1),
        ]), clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await clock.drive(step: 1_000) {
            // Three units share the three lies in whatever order they run: one unit may get all three, so it may retry three times.
            await E2E.extract(["--series", "mark,index,premium", "--timeframes", "15m", "--symbols", "BTCUSDT", "--lookback-hours", "72",
                               "--page-limit", "100", "--unit-retries", "3"], sim: sim, store: db, clock: clock)
        }
        #expect(run.status == 0, "\(run.errors)")
        #expect(await sim.simulator.statistics.faultsInjected == 6)
        for table in Self.tables(.m15) {
            try await E2E.expectExact(db, sim, table: table, symbol: "BTCUSDT", from: KlineInterval.m15.openTime(containing: Self.now - 72 * 3_600_000),
                                      through: Self.now)
        }
    }

    @Test("a price series on spot, or a series Binance does not have, is refused by name before anything runs")
    func refused() async throws {
        let clock = ManualClock(now: Self.now)
        for (args, message) in [(["--market", "spot", "--series", "mark"], "for futures only (USD-M and COIN-M)"),
                                (["--series", "funding"], "invalid series 'funding'")] {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(arguments: ["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--dry-run"] + args,
                                                environment: ["OTEL_SDK_DISABLED": "true"], context: RunContext(clock: clock, output: out, errors: err))
            #expect(status == 2, "\(args)")
            #expect(err.text.contains(message), "\(err.text)")
        }
        let out = LineSink(), err = LineSink()
        let status = await ExtractorCLI.run(arguments: ["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--dry-run"],
                                            environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_KLINES_SERIES": "trade,lastprice"],
                                            context: RunContext(clock: clock, output: out, errors: err))
        #expect(status == 2 && err.text.contains("BINANCE_KLINES_SERIES"), "\(err.text)")
    }
}
