import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import StoreKit
import Telemetry
import TestSupport
import Testing

/// `binance-extractor coverage` on a real MariaDB filled by real runs against binance-sim.
@Suite("Coverage: what is stored, at a glance", .serialized, .timeLimit(.minutes(3)))
struct CoverageTests {
    typealias Jobs = HistoryJobsTests
    static let m15: Int64 = 15 * 60_000

    static func coverage(_ args: [String], db: TestDatabase, clock: any WallClock, terminal: Bool = false) async -> KlinesEndToEndTests.Run {
        await coverage(args, store: TestStore(db), clock: clock, terminal: terminal)
    }

    static func coverage(_ args: [String], store: TestStore, clock: any WallClock, terminal: Bool = false) async -> KlinesEndToEndTests.Run {
        let out = LineSink(), err = LineSink()
        let status = await ExtractorCLI.run(arguments: ["coverage", "--database-url", store.urlText] + args, environment: ["OTEL_SDK_DISABLED": "true"],
                                            context: RunContext(clock: clock, output: out, errors: err, outputIsTerminal: terminal))
        return KlinesEndToEndTests.Run(status: status, output: out.text, errors: err.text)
    }

    /// The JSON line's series, keyed by "table symbol".
    static func series(_ output: String) throws -> [String: [String: Any]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let rows = try #require(object["series"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: rows.map { ("\($0["table"]!) \($0["symbol"]!)", $0) })
    }

    @Test("per table and symbol: span, rows, rows expected, holes, confirmed outages and candles behind; trades by id; funding by span",
          arguments: StoreKind.allCases)
    func coverage(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Jobs.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let outage = KlineInterval.m15.openTime(containing: Jobs.now - 30 * 3_600_000)
        await sim.simulator.setOutages([outage..<(outage + 8 * Self.m15)])
        for args in [["klines", "--timeframes", "15m", "--symbols", "BTCUSDT,ETHUSDT", "--lookback-hours", "72"],
                     ["trades", "--symbols", "BTCUSDT", "--lookback-hours", "1"], ["funding", "--symbols", "BTCUSDT", "--lookback-hours", "72"]] {
            let run = await Jobs.cli(args, sim: sim, store: db, clock: clock)
            #expect(run.status == 0, "\(args[0]): \(run.errors)")
        }
        let first = KlineInterval.m15.openTime(containing: Jobs.now - 72 * 3_600_000)
        let lastClosed = KlineInterval.m15.openTime(containing: Jobs.now) - Self.m15
        // Two holes of our own in BTCUSDT: 3 and 10 candles.
        try await db.deleteKlines("klines_m15", symbol: "BTCUSDT", from: first + 10 * Self.m15, through: first + 12 * Self.m15)
        try await db.deleteKlines("klines_m15", symbol: "BTCUSDT", from: first + 100 * Self.m15, through: first + 109 * Self.m15)
        let tradeIds = try await db.query("SELECT agg_trade_id FROM agg_trades ORDER BY agg_trade_id").compactMap { $0[0].flatMap { Int64($0) } }
        try await db.execute("DELETE FROM agg_trades WHERE agg_trade_id IN (\(tradeIds[5]), \(tradeIds[6]), \(tradeIds[40]))")
        clock.advance(by: 60 * 60_000)

        let run = await Self.coverage([], store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let series = try Self.series(run.output)
        #expect(series.count == 4, "\(series.keys.sorted())")
        let expected = Int((lastClosed - first) / Self.m15 + 1)
        let btc = try #require(series["klines_m15 BTCUSDT"])
        #expect(btc["first"] as? String == UTCCalendar.iso8601(first))
        #expect(btc["last"] as? String == UTCCalendar.iso8601(lastClosed))
        #expect(btc["expected"] as? Int == expected)
        #expect(btc["rows"] as? Int == expected - 8 - 13)
        #expect(btc["missing"] as? Int == 21)
        #expect(btc["holes"] as? Int == 3)
        #expect(btc["confirmed_outages"] as? Int == 1 && btc["confirmed_missing"] as? Int == 8)
        #expect(btc["complete"] as? Bool == false)
        #expect(btc["behind"] as? Int == 4, "an hour has passed since the run")
        let eth = try #require(series["klines_m15 ETHUSDT"])
        #expect(eth["holes"] as? Int == 1 && eth["missing"] as? Int == 8 && eth["complete"] as? Bool == true, "only Binance's own outage: \(eth)")
        let trades = try #require(series["agg_trades BTCUSDT"])
        #expect(trades["expected"] as? Int == tradeIds.count && trades["rows"] as? Int == tradeIds.count - 3)
        #expect(trades["holes"] as? Int == 2 && trades["complete"] as? Bool == false)
        let funding = try #require(series["funding_rates BTCUSDT"])
        #expect(funding["rows"] as? Int == Int(try await db.count("funding_rates")))
        #expect(funding["expected"] is NSNull && funding["complete"] is NSNull)

        // Filters: one symbol, one timeframe (kline tables only).
        let filtered = try Self.series(await Self.coverage(["--symbols", "ETHUSDT", "--timeframes", "15m"], store: db, clock: clock).output)
        #expect(Array(filtered.keys) == ["klines_m15 ETHUSDT"])
        #expect(try Self.series(await Self.coverage(["--market", "spot"], store: db, clock: clock).output).isEmpty)

        // On a terminal: a table and the verdict.
        let table = await Self.coverage([], store: db, clock: clock, terminal: true)
        #expect(table.output.split(separator: "\n").contains { $0.hasPrefix("klines_m15 ") && $0.contains("BTCUSDT  \(UTCCalendar.iso8601(first))")
            // behind 4; then rows from files and from REST (the ledger's row_sources)
            && $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(10).first == "4" },
                "\(table.output)")
        #expect(table.output.contains("1 (8)"), "an outage and its candles")
        #expect(table.output.contains("4 series in 3 tables: 1 complete, 2 lacking rows, 1 without a fixed cadence (funding)\n16 rows Binance has are missing"), "\(table.output)")
    }

    @Test("coverage needs a database, and says so with exit 2; a bad --format names it")
    func badInput() async throws {
        let out = LineSink(), err = LineSink()
        let status = await ExtractorCLI.run(arguments: ["coverage"], environment: ["OTEL_SDK_DISABLED": "true"],
                                            context: RunContext(output: out, errors: err))
        #expect(status == 2 && err.text.contains("no database configured"))
        let db = try await TestDatabase.make()
        defer { Task { await db.drop() } }
        let bad = await Self.coverage(["--format", "xml"], db: db, clock: ManualClock(now: Jobs.now))
        #expect(bad.status == 2 && bad.errors.contains("--format 'xml'"))
        let empty = await Self.coverage(["--format", "table"], db: db, clock: ManualClock(now: Jobs.now))
        #expect(empty.status == 0 && empty.output == "nothing stored in the tables asked for\n")
    }
}
