import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import Pipeline
import StoreKit
import Telemetry
import TestSupport
import Testing

/// `trades --source auto` against binance-sim's aggTrades files and REST endpoints, into a real MariaDB: the rows a
/// file gives are the rows REST gives, byte for byte, on both markets and on both sides of spot's switch to
/// microseconds (2025-01-01).
@Suite("aggregate trades from the archives", .serialized, .timeLimit(.minutes(3)))
struct ArchiveTradesTests {
    typealias E2E = KlinesEndToEndTests
    static let day: Int64 = 86_400_000

    static func run(_ args: [String], source: String, sim: SimulatorFixture, db: TestDatabase, clock: ManualClock) async throws -> E2E.Run {
        try await clock.drive(step: 100) {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(
                arguments: ["trades", "--api-url", sim.baseURL, "--mysql-uri", db.uriText, "--source", source, "--summary", "json"] + args,
                environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_ARCHIVE_URL": sim.baseURL],
                context: RunContext(clock: clock, output: out, errors: err))
            return E2E.Run(status: status, output: out.text, errors: err.text)
        }
    }

    static func table(_ db: TestDatabase, _ market: Market) async throws -> [[String?]] {
        try await db.query("SELECT symbol, agg_trade_id, price, quantity, first_trade_id, last_trade_id, trade_time, is_buyer_maker FROM `"
                           + TradeTable(market: market).name + "` ORDER BY agg_trade_id")
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let market: Market
        let now: Int64
        var testDescription: String { "\(market.rawValue) at \(UTCCalendar.iso8601(now))" }
    }

    @Test("whole days from files (one of them incomplete), the hours before and today by REST: the table equals a REST-only run's",
          arguments: [Case(market: .futures, now: E2E.now), Case(market: .spot, now: E2E.now),
                      Case(market: .spot, now: UTCCalendar.parse("2025-01-03T12:05:30")!),
                      Case(market: .futures, now: UTCCalendar.parse("2025-01-03T12:05:30")!)])
    func equalsREST(_ c: Case) async throws {
        let clock = ManualClock(now: c.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let fromFiles = try await TestDatabase.make(), fromREST = try await TestDatabase.make()
        defer { Task { await sim.stop(); await fromFiles.drop(); await fromREST.drop() } }
        let today = c.now - c.now % Self.day
        let start = today - 2 * Self.day - 6 * 3_600_000  // 6 hours of REST, two whole days of files, today by REST
        let (y, m, d) = { () -> (Int, Int, Int) in
            let text = UTCCalendar.iso8601(today - Self.day)
            let parts = text.prefix(10).split(separator: "-").map { Int($0)! }
            return (parts[0], parts[1], parts[2])
        }()
        let yesterday = String(format: "BTCUSDT-aggTrades-%04d-%02d-%02d.zip", y, m, d)
        await sim.simulator.setArchiveFaults([yesterday: .incomplete(rows: 5_000)])
        let args = ["--market", c.market.rawValue, "--symbols", "BTCUSDT", "--start", "\(start)"]
        let auto = try await Self.run(args, source: "auto", sim: sim, db: fromFiles, clock: clock)
        #expect(auto.status == 0, "\(auto.errors)")
        let stats = await sim.simulator.statistics
        #expect(stats.archiveDownloads == 2, "two daily files")
        let unit = try #require(NeverStuckTests.units(auto).first)
        #expect(unit["archive_files"] as? Int == 2, "\(unit)")
        // 8,640 trades a day: the day before yesterday whole, yesterday's first 5,000, from files; the rest from REST.
        #expect(unit["from_archive"] as? Int == 8_640 + 5_000, "\(unit)")
        let rest = try await Self.run(args, source: "rest", sim: sim, db: fromREST, clock: clock)
        #expect(rest.status == 0, "\(rest.errors)")
        let a = try await Self.table(fromFiles, c.market), b = try await Self.table(fromREST, c.market)
        #expect(a.count == b.count && a.count > 2 * 8_640, "\(a.count) rows from files and REST, \(b.count) from REST")
        #expect(a == b, "rows fed from archive files differ from rows fed by REST")
        // And both are what the exchange served: every id from the first trade at or after the start, none twice.
        let first = try #require(b.first?[1].flatMap { Int64($0) })
        let expected = await sim.simulator.expectedAggTrades(symbol: "BTCUSDT", fromId: first, throughTime: c.now)
        #expect(a.map { $0[1].flatMap { Int64($0) } } == expected.map(\.id))
    }

    @Test("a resumed run whose last trade is days old takes the whole days between from files, then REST by id")
    func resumeAcrossDays() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let today = E2E.now - E2E.now % Self.day
        let first = try await Self.run(["--symbols", "BTCUSDT", "--start", "\(today - 3 * Self.day - 3_600_000)", "--max-pages", "1"],
                                       source: "rest", sim: sim, db: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        let second = try await Self.run(["--symbols", "BTCUSDT"], source: "auto", sim: sim, db: db, clock: clock)
        #expect(second.status == 0, "\(second.errors)")
        let unit = try #require(NeverStuckTests.units(second).first)
        // The first run stopped in the small hours of day -3 (one page): the rest of that day by REST, days -2 and -1
        // from files, today by REST.
        #expect(unit["archive_files"] as? Int == 2 && unit["from_archive"] as? Int == 2 * 8_640, "\(unit)")
        let ids = try await db.query("SELECT agg_trade_id FROM agg_trades ORDER BY agg_trade_id").compactMap { $0[0].flatMap { Int64($0) } }
        let expected = await sim.simulator.expectedAggTrades(symbol: "BTCUSDT", fromId: ids[0], throughTime: E2E.now)
        #expect(ids == expected.map(\.id), "no hole and no repeat between the REST run, the files and today's REST")
    }

    @Test("--dry-run lists the aggTrades files and the stretches left to REST, downloads nothing, writes nothing")
    func dryRun() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let today = E2E.now - E2E.now % Self.day
        let run = try await Self.run(["--symbols", "BTCUSDT", "--start", "\(today - 2 * Self.day)", "--dry-run"], source: "auto", sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let unit = try #require(NeverStuckTests.units(run).first)
        let files = try #require(unit["archive_files_planned"] as? [[String: Any]], "\(unit)")
        #expect(files.map { $0["file"] as? String } == ["BTCUSDT-aggTrades-2024-02-28.zip", "BTCUSDT-aggTrades-2024-02-29.zip"])
        #expect(files.allSatisfy { ($0["bytes"] as? Int ?? 0) > 0 })
        #expect((unit["rest_ranges"] as? [[String: String]])?.first?["from"] == "2024-03-01T00:00:00.000Z", "today, by REST")
        let stats = await sim.simulator.statistics
        #expect(stats.archiveDownloads == 0 && stats.aggTradesRequests == 0)
        #expect(((try? await db.count("agg_trades")) ?? 0) == 0)
    }
}
