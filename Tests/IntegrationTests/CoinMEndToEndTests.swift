import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import StoreKit
import Telemetry
import TestSupport
import Testing

/// `--market coinm` against binance-sim's `/dapi` and `data/futures/cm` into real MariaDB and PostgreSQL: COIN-M klines
/// answer the newest `limit` candles of a window of at most 200 days, count volume in contracts, and name the base
/// volume `quote_volume` in their files (binance-public-data #267); delivery contracts end when they deliver; funding is
/// the perpetuals'.
@Suite("COIN-M futures end to end", .serialized, .timeLimit(.minutes(3)))
struct CoinMEndToEndTests {
    typealias E2E = KlinesEndToEndTests
    static let now = E2E.now  // 2024-03-01T12:05:30Z: BTCUSD_231229 has delivered; BTCUSD_240329 and BTCUSD_240628 trade
    static let day: Int64 = 86_400_000

    static func cli(_ args: [String], sim: SimulatorFixture, store: TestStore, clock: ManualClock, source: String = "rest") async throws -> E2E.Run {
        try await clock.drive(step: 100) {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(
                arguments: args + ["--market", "coinm", "--api-url", sim.baseURL, "--database-url", store.urlText] + (args[0] == "funding" ? [] : ["--source", source]),
                environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_ARCHIVE_URL": sim.baseURL],
                context: RunContext(clock: clock, output: out, errors: err))
            return E2E.Run(status: status, output: out.text, errors: err.text)
        }
    }

    static func table(_ interval: KlineInterval) -> KlineTable { KlineTable(market: .coinm, interval: interval) }

    @Test("perpetuals over 300 days: windows of at most one page and 200 days, never refused, exact; columns named for what they hold",
          arguments: StoreKind.allCases)
    func pagingPast200Days(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let start = KlineInterval.d1.openTime(containing: Self.now - 300 * Self.day)
        let run = try await Self.cli(["klines", "--timeframes", "1d,4h", "--symbols", "BTCUSD_PERP,ETHUSD_PERP", "--start", UTCCalendar.iso8601(start)],
                                     sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        for symbol in ["BTCUSD_PERP", "ETHUSD_PERP"] {
            for interval in [KlineInterval.d1, .h4] {
                try await E2E.expectExact(db, sim, table: Self.table(interval), symbol: symbol, from: start, through: Self.now)
            }
        }
        let stats = await sim.simulator.statistics
        // 1d: 200 days, then 100; 4h: windows of 499 candles (83 days): 4. Per symbol.
        #expect(stats.klinesRequests == 2 * (2 + 4), "\(stats.klinesRequests)")
        #expect(stats.byStatus["400"] == nil, "no window longer than 200 days was sent")
        let sql = kind == .mariadb
            ? "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'coinm_klines_d1'"
            : "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'coinm_klines_d1'"
        let columns = Set(try await db.query(sql).compactMap { $0[0] })
        #expect(columns == ["symbol", "open_time", "close_time", "open_price", "high_price", "low_price", "close_price", "volume_contracts",
                            "base_asset_volume", "number_of_trades", "taker_buy_volume_contracts", "taker_buy_base_asset_volume"])
        // Volumes are whole contracts.
        let fractional = try await db.query("SELECT COUNT(*) FROM coinm_klines_d1 WHERE volume_contracts <> FLOOR(volume_contracts)")
        #expect(fractional.first?.first == "0")
    }

    @Test("from the cm archives: the file's quote_volume column is stored as the base volume REST names, row for row", arguments: StoreKind.allCases)
    func filesEqualREST(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let fromFiles = try await TestStore.make(kind), fromREST = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await fromFiles.drop(); await fromREST.drop() } }
        let args = ["klines", "--timeframes", "1h", "--symbols", "BTCUSD_PERP,BTCUSD_240329", "--start", "2024-01-01", "--summary", "json"]
        let auto = try await Self.cli(args, sim: sim, store: fromFiles, clock: clock, source: "auto")
        #expect(auto.status == 0, "\(auto.errors)")
        for unit in NeverStuckTests.units(auto) { #expect(unit["archive_files"] as? Int == 30, "\(unit)") }
        let rest = try await Self.cli(args, sim: sim, store: fromREST, clock: clock)
        #expect(rest.status == 0, "\(rest.errors)")
        let select = "SELECT * FROM coinm_klines_h1 ORDER BY symbol, open_time"
        let a = try await fromFiles.query(select), b = try await fromREST.query(select)
        let rows: Int = 2 * ((31 + 29) * 24 + 12)
        #expect(a.count == rows, "\(a.count) rows from files")
        #expect(a == b, "rows fed from cm archive files differ from rows fed by REST")
    }

    @Test("faults on /dapi pages and on cm files: retried, refused whole, filled from REST; an hour later one window per unit; exact",
          arguments: StoreKind.allCases)
    func faultsAndResume(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .descending, every: 2, count: 1), FaultPlan(kind: .http503, every: 3, count: 2),
                                FaultPlan(kind: .highBelowLow, every: 5, count: 1)]
        let sim = try await SimulatorFixture.start(configuration: configuration, clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSD_PERP-1h-2024-02-03.zip": .incomplete(rows: 10), "BTCUSD_PERP-1h-2024-02-05.zip": .missing,
                                              "BTCUSD_PERP-1h-2024-02-07.zip": .disordered])
        let run = try await Self.cli(["klines", "--timeframes", "1h", "--symbols", "BTCUSD_PERP", "--start", "2024-01-25", "--page-limit", "100",
                                      "--unit-retries", "3"], sim: sim, store: db, clock: clock, source: "auto")
        #expect(run.status == 0, "\(run.errors)")
        #expect(await sim.simulator.statistics.faultsInjected == 4)
        let start = UTCCalendar.parse("2024-01-25")!
        try await E2E.expectExact(db, sim, table: Self.table(.h1), symbol: "BTCUSD_PERP", from: start, through: Self.now)

        clock.advance(by: 3_600_000)
        await sim.simulator.resetStatistics()
        let next = try await Self.cli(["klines", "--timeframes", "1h", "--symbols", "BTCUSD_PERP"], sim: sim, store: db, clock: clock)
        #expect(next.status == 0, "\(next.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 1, "one window from the last stored candle (and its overlap) to now")
        try await E2E.expectExact(db, sim, table: Self.table(.h1), symbol: "BTCUSD_PERP", from: start, through: clock.now())
    }

    @Test("COIN-M mark, index and premium candles: /dapi endpoints and cm files give the same rows; the index is the pair's, asked once for its contracts",
          arguments: StoreKind.allCases)
    func priceSeries(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let fromFiles = try await TestStore.make(kind), fromREST = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await fromFiles.drop(); await fromREST.drop() } }
        let args = ["klines", "--series", "mark,index,premium", "--timeframes", "1h", "--symbols", "BTCUSD_PERP,BTCUSD_240329", "--start", "2024-01-01",
                    "--summary", "json"]
        let auto = try await Self.cli(args, sim: sim, store: fromFiles, clock: clock, source: "auto")
        #expect(auto.status == 0, "\(auto.errors)")
        let units = NeverStuckTests.units(auto)
        // mark and premium for each contract, the index once for the pair BTCUSD.
        #expect(units.count == 5 && units.filter { $0["series"] as? String == "index" }.map { $0["symbol"] as? String } == ["BTCUSD"], "\(units)")
        #expect(units.allSatisfy { $0["archive_files"] as? Int == 30 }, "\(units)")
        let rest = try await Self.cli(args, sim: sim, store: fromREST, clock: clock)
        #expect(rest.status == 0, "\(rest.errors)")
        for series in [PriceSeries.mark, .index, .premium] {
            let table = KlineTable(market: .coinm, interval: .h1, series: series)
            let select = "SELECT * FROM \(table.name) ORDER BY symbol, open_time"
            let a = try await fromFiles.query(select), b = try await fromREST.query(select)
            #expect(a.count > 1400 && a == b, "\(table): \(a.count) rows from files, \(b.count) from REST")
            for symbol in series == .index ? ["BTCUSD"] : ["BTCUSD_PERP", "BTCUSD_240329"] {
                try await E2E.expectExact(fromFiles, sim, table: table, symbol: symbol, from: UTCCalendar.parse("2024-01-01")!, through: Self.now)
            }
        }
        #expect(await sim.simulator.statistics.byStatus["400"] == nil)
    }

    @Test("delivery contracts: one delivered is complete at its delivery (from listing, found by probes), the next quarter's fills to now",
          arguments: StoreKind.allCases)
    func deliveryContracts(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let delivered = "BTCUSD_231229", next = "BTCUSD_240628"
        let info = try #require(String(data: try Data(contentsOf: URL(string: sim.baseURL + "/dapi/v1/exchangeInfo")!), encoding: .utf8))
        #expect(info.contains("\"symbol\":\"\(next)\"") && info.contains("NEXT_QUARTER") && !info.contains(delivered), "\(info.prefix(600))")
        let run = try await Self.cli(["klines", "--timeframes", "1h", "--symbols", "\(delivered),\(next)", "--from-listing"], sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let delivery = try #require(try Symbol(validating: delivered).deliveryTime)
        #expect(delivery == UTCCalendar.parse("2023-12-29T08:00:00Z"))
        for symbol in [delivered, next] {
            try await E2E.expectExact(db, sim, table: Self.table(.h1), symbol: symbol, from: 0, through: Self.now)
        }
        let last = try await db.klines(table: Self.table(.h1), symbol: delivered).last?.openTime
        #expect(last == delivery - 3_600_000, "the last candle opens an hour before delivery")

        clock.advance(by: 2 * 3_600_000)
        await sim.simulator.resetStatistics()
        let again = try await Self.cli(["klines", "--timeframes", "1h", "--symbols", delivered, "--summary", "json"], sim: sim, store: db, clock: clock)
        #expect(again.status == 0, "\(again.errors)")
        #expect(NeverStuckTests.units(again).first?["stalled"] as? Bool == false)
        #expect(await sim.simulator.statistics.klinesRequests == 0, "a delivered contract whose last candle is stored asks nothing")
        let coverage = await CoverageTests.coverage(["--market", "coinm"], store: db, clock: clock)
        let series = try CoverageTests.series(coverage.output)
        let done = try #require(series["coinm_klines_h1 \(delivered)"], "\(series.keys.sorted())")
        #expect(done["behind"] as? Int == 0 && done["complete"] as? Bool == true, "\(done)")
        #expect((series["coinm_klines_h1 \(next)"]?["behind"] as? Int ?? 0) > 0, "the trading contract is two hours behind")
    }

    @Test("BTCUSD_* follows the quarters: two days after a delivery it is the perpetual, the two listed quarters and the one that just delivered",
          arguments: StoreKind.allCases)
    func contractFamily(store kind: StoreKind) async throws {
        let clock = ManualClock(now: UTCCalendar.parse("2024-03-31T00:05:30Z")!)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await Self.cli(["klines", "--timeframes", "1d", "--symbols", "BTCUSD_*", "--lookback-hours", "240", "--summary", "json"],
                                     sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let symbols = Set(NeverStuckTests.units(run).compactMap { $0["symbol"] as? String })
        #expect(symbols == ["BTCUSD_PERP", "BTCUSD_240329", "BTCUSD_240628", "BTCUSD_240927"], "\(symbols)")
        let start = KlineInterval.d1.openTime(containing: clock.now() - 240 * 3_600_000)
        for symbol in symbols { try await E2E.expectExact(db, sim, table: Self.table(.d1), symbol: symbol, from: start, through: clock.now()) }
        let delivered = try await db.klines(table: Self.table(.d1), symbol: "BTCUSD_240329")
        #expect(delivered.last?.openTime == UTCCalendar.parse("2024-03-29"), "its last candle is the day it delivered")
    }

    @Test("funding for perpetuals into coinm_funding_rates; a delivery contract is refused by name; trades count contracts", arguments: StoreKind.allCases)
    func fundingAndTrades(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let funding = try await Self.cli(["funding", "--symbols", "BTCUSD_PERP", "--start", "2024-01-01"], sim: sim, store: db, clock: clock)
        #expect(funding.status == 0, "\(funding.errors)")
        let expected = await sim.simulator.expectedFundingRates(symbol: "BTCUSD_PERP", from: UTCCalendar.parse("2024-01-01")!, through: Self.now)
        let stored = try await db.fundingRates(symbol: "BTCUSD_PERP", table: "coinm_funding_rates")
        #expect(stored.count == expected.count && expected.count > 150)
        #expect(stored.map(\.0) == expected.map(\.fundingTime))
        #expect(try await db.count("funding_rates") == 0, "USD-M's table is not COIN-M's")

        let refused = try await Self.cli(["funding", "--symbols", "BTCUSD_PERP,BTCUSD_240329"], sim: sim, store: db, clock: clock)
        #expect(refused.status == 2 && refused.errors.contains("BTCUSD_240329 is a delivery contract"), "\(refused.errors)")

        let trades = try await Self.cli(["trades", "--symbols", "BTCUSD_PERP", "--lookback-hours", "2"], sim: sim, store: db, clock: clock, source: "auto")
        #expect(trades.status == 0, "\(trades.errors)")
        let ids = try await db.tradeIds(TradeTable(market: .coinm), symbol: "BTCUSD_PERP")
        let served = await sim.simulator.expectedAggTrades(symbol: "BTCUSD_PERP", fromId: ids.first?.0 ?? 0, throughTime: Self.now)
        #expect(ids.map(\.0) == served.map(\.id) && ids.count > 600)
        let whole = try await db.query("SELECT COUNT(*) FROM coinm_agg_trades WHERE quantity_contracts <> FLOOR(quantity_contracts)")
        #expect(whole.first?.first == "0", "contracts are whole")

        // A closed day of trades from its data/futures/cm daily file.
        await sim.simulator.resetStatistics()
        let day = try await Self.cli(["trades", "--symbols", "BTCUSD_PERP", "--start", "2024-02-27", "--end", "2024-02-28", "--summary", "json"],
                                     sim: sim, store: db, clock: clock, source: "auto")
        #expect(day.status == 0, "\(day.errors)")
        #expect(NeverStuckTests.units(day).first?["archive_files"] as? Int == 1, "\(day.output)")
        let dayIds = try await db.tradeIds(TradeTable(market: .coinm), symbol: "BTCUSD_PERP").filter { $0.1 < UTCCalendar.parse("2024-02-28")! }
        let dayServed = await sim.simulator.expectedAggTrades(symbol: "BTCUSD_PERP", fromId: dayIds.first?.0 ?? 0,
                                                              throughTime: UTCCalendar.parse("2024-02-28")! - 1)
        #expect(dayIds.count == 8640 && dayIds.map(\.0) == dayServed.map(\.id), "a day of one trade every 10 s")
    }
}
