import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import StoreKit
import Telemetry
import TestSupport
import Testing

/// What probing main 46f0d4d as a hostile user and a broken network found (issue "Nothing lost, nothing leaked, no
/// false ok"): each case here failed there. Against binance-sim and real MariaDB and PostgreSQL.
@Suite("nothing lost, nothing leaked, no false ok", .serialized, .timeLimit(.minutes(3)))
struct NothingLostTests {
    typealias E2E = KlinesEndToEndTests
    typealias Metrics = MetricsEndToEndTests
    static let now = E2E.now  // 2024-03-01T12:05:30Z

    /// Any command in this process, with `environment` added to the tests' own (telemetry off, the simulator's archives).
    static func cli(_ args: [String], sim: SimulatorFixture, store: TestStore?, clock: ManualClock, environment: [String: String] = [:],
                    api: Bool = true) async throws -> E2E.Run {
        try await clock.drive(step: 100) {
            let out = LineSink(), err = LineSink()
            var arguments = args + (api ? ["--api-url", sim.baseURL] : [])
            if let store { arguments += ["--database-url", store.urlText] }
            let status = await ExtractorCLI.run(
                arguments: arguments,
                environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_ARCHIVE_URL": sim.baseURL].merging(environment) { _, new in new },
                context: RunContext(clock: clock, output: out, errors: err))
            return E2E.Run(status: status, output: out.text, errors: err.text)
        }
    }

    static func units(_ run: E2E.Run) -> [[String: Any]] { NeverStuckTests.units(run) }

    static func closedArchive() throws -> String { "http://127.0.0.1:\(try LoopbackPort.closed())" }

    // MARK: Data lost or confirmed away (points 1 to 3)

    @Test("metrics older than REST's 30 days: part of a day comes from that day's file (point 1)", arguments: StoreKind.allCases)
    func metricsPartOfAnOldDay(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        // About 45 days back: from noon to the next morning, two daily files and no REST.
        let run = try await Self.cli(["metrics", "--symbols", "ETHUSDT", "--start", "2024-01-16T12:00:00", "--end", "2024-01-17T06:00:00"],
                                     sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        try await Metrics.expectExact(db, sim, symbol: "ETHUSDT", from: UTCCalendar.parse("2024-01-16T12:00:00")!,
                                      through: UTCCalendar.parse("2024-01-17T05:55:00")!)
        let unit = try #require(Self.units(run).first)
        #expect(unit["archive_files"] as? Int == 2 && unit["archive_lacked"] as? Int == 0, "\(unit)")
        #expect(!run.errors.contains("older than REST"), "\(run.errors)")
    }

    @Test("gaps --metrics with the archive host unreachable fails and confirms nothing; with the host back it fills the hole (point 2)",
          arguments: StoreKind.allCases)
    func metricsGapsHostDown(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let start = UTCCalendar.parse("2024-01-15")!
        let first = try await Self.cli(["metrics", "--symbols", "BTCUSDT", "--start", "2024-01-15"], sim: sim, store: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        try await db.execute("DELETE FROM futures_metrics WHERE symbol = 'BTCUSDT' AND metric_time >= '2024-01-20 00:00:00' AND metric_time < '2024-01-21 00:00:00'")

        let down = try await Self.cli(["gaps", "--metrics", "--symbols", "BTCUSDT", "--archive-url", try Self.closedArchive()], sim: sim, store: db, clock: clock)
        #expect(down.status == 1, "\(down.errors)")
        #expect(try await db.confirmedGaps().isEmpty, "existing history was confirmed as Binance's outage")
        let unit = try #require(Self.units(down).first)
        #expect(unit["status"] as? String == "failed" && (unit["error"] as? String ?? "").contains("archive host could not be reached"), "\(unit)")

        let back = try await Self.cli(["gaps", "--metrics", "--symbols", "BTCUSDT"], sim: sim, store: db, clock: clock)
        #expect(back.status == 0, "\(back.errors)")
        try await Metrics.expectExact(db, sim, symbol: "BTCUSDT", from: start, through: Self.now)
        #expect(try await db.confirmedGaps().isEmpty)
    }

    @Test("an outage inside a monthly file is recorded as confirmed by the run that read the file (point 3)", arguments: StoreKind.allCases)
    func outageInsideAFile(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let outage = UTCCalendar.parse("2024-01-10T03:00:00")!..<UTCCalendar.parse("2024-01-10T06:00:00")!
        await sim.simulator.setOutages([outage])
        let run = try await ArchiveBackfillTests.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-02-01"],
                                                     source: "auto", sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let unit = try #require(Self.units(run).first)
        #expect(unit["archive_files"] as? Int == 1, "January's monthly file: \(unit)")
        let confirmed = try await db.confirmedGaps()
        #expect(confirmed == [["BTCUSDT", String(outage.lowerBound), String(outage.upperBound - 3_600_000)]], "\(confirmed)")
        let coverage = await CoverageTests.coverage(["--timeframes", "1h"], store: db, clock: clock)
        let btc = try #require(try CoverageTests.series(coverage.output)["klines_h1 BTCUSDT"], "\(coverage.output)")
        #expect(btc["confirmed_outages"] as? Int == 1 && btc["confirmed_missing"] as? Int == 3, "\(btc)")
    }

    // MARK: Silent wrong data (points 4 to 6)

    @Test("a zip whose entry names another symbol is refused; its period comes from REST, exact (point 4)", arguments: StoreKind.allCases)
    func entryOfAnotherSymbol(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-01.zip": .entryNamed("ETHUSDT-1h-2024-01.csv")])
        let run = try await ArchiveBackfillTests.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-02-01"],
                                                     source: "auto", sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.errors.contains("ETHUSDT-1h-2024-01.csv") && run.errors.contains("another file's rows"), "\(run.errors)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: "BTCUSDT",
                                  from: UTCCalendar.parse("2024-01-01")!, through: UTCCalendar.parse("2024-02-01")! - 1)
        let unit = try #require(Self.units(run).first)
        #expect(unit["from_archive"] as? Int == 0 && unit["from_rest"] as? Int == 31 * 24, "\(unit)")
    }

    @Test("PostgreSQL: a timestamptz(0) close_time is refused before anything is fetched, with its ALTER (point 5)")
    func timestamptzWithoutMilliseconds() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(.postgresql)
        defer { Task { await sim.stop(); await db.drop() } }
        let args = ["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--lookback-hours", "1", "--source", "rest"]
        #expect(try await Self.cli(args, sim: sim, store: db, clock: clock).status == 0)
        try await db.execute("DELETE FROM klines_m1")
        try await db.execute("ALTER TABLE klines_m1 ALTER COLUMN close_time TYPE timestamptz(0)")
        await sim.simulator.resetStatistics()
        let run = try await Self.cli(args, sim: sim, store: db, clock: clock)
        #expect(run.status == 2, "\(run.errors)")
        #expect(run.errors.contains("column close_time is timestamptz(0)") && run.errors.contains("ALTER TABLE klines_m1 ALTER COLUMN close_time TYPE timestamptz"),
                "\(run.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 0)
        #expect(try await db.count("klines_m1") == 0)
    }

    // MARK: Out of memory (point 7)

    @Test("a file whose last line runs on without a newline is refused at 4 KiB, not held; REST fills its day (point 7)", arguments: StoreKind.allCases)
    func runawayLine(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-02-02.zip": .runawayLine(bytes: 2_000_000)])
        let run = try await ArchiveBackfillTests.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-04"],
                                                     source: "auto", sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.errors.contains("a line longer than 4096 bytes"), "\(run.errors)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: "BTCUSDT",
                                  from: UTCCalendar.parse("2024-02-01")!, through: UTCCalendar.parse("2024-02-04")! - 1)
    }

    // MARK: Secrets (point 8)

    @Test("a secret is never echoed: a password in the query, a _FILE holding something else, a user part with a colon, an endpoint without a scheme (point 8)")
    func secretsNeverShown() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        defer { Task { await sim.stop() } }
        let base = ["klines", "--timeframes", "1m", "--symbols", "BTCUSDT"]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bx-secret-\(UUID().uuidString)")
        try "DB_USER=app\nDB_PASSWORD=XLEAKX\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let cases: [([String], [String: String], String)] = [
            (base + ["--database-url", "postgresql://app@db.example/market?password=XLEAKX"], [:], "--database-url"),
            (base + ["--database-url", "mysql://app@db.example/market?password=XLEAKX"], [:], "--database-url"),
            (base, ["DATABASE_URL_FILE": file.path], "DATABASE_URL_FILE"),
            (base, ["MYSQL_URI": "XLEAKX"], "MYSQL_URI"),
            (base + ["--mysql-uri", "mysql://app:XLEAKX/market"], [:], "--mysql-uri"),
            (base + ["--dry-run", "--api-url", "ftp://user:XLEAKX@api.example"], [:], "--api-url"),
            (base + ["--dry-run", "--source", "auto", "--archive-url", "user:XLEAKX@files.example"], [:], "--archive-url"),
        ]
        for (args, environment, named) in cases {
            let run = try await Self.cli(args, sim: sim, store: nil, clock: clock, environment: environment, api: !args.contains("--api-url"))
            #expect(run.status == 2, "\(args) \(environment): \(run.errors)")
            #expect(!(run.output + run.errors).contains("XLEAKX"), "\(args) \(environment): \(run.errors)")
            #expect(run.errors.contains(named), "\(run.errors)")
        }
        // A user part holding a colon once decoded: the connection error shows the URL without it.
        let colon = try await Self.cli(base + ["--lookback-hours", "1"], sim: sim, store: nil, clock: clock,
                                       environment: ["MYSQL_URI": "mysql://app%3AXLEAKX@127.0.0.1:\(try LoopbackPort.closed())/market"])
        #expect(colon.status != 0 && !(colon.output + colon.errors).contains("XLEAKX"), "\(colon.errors)")
        // An OTLP endpoint without a scheme, credentials in it: said once per endpoint, never with them.
        let otel = try await Self.cli(base + ["--dry-run", "--lookback-hours", "1"], sim: sim, store: nil, clock: clock,
                                      environment: ["OTEL_SDK_DISABLED": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "user:XLEAKX@127.0.0.1:4318"])
        #expect(otel.status == 0, "\(otel.errors)")
        #expect(otel.errors.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && !otel.errors.contains("XLEAKX"), "\(otel.errors)")
    }

    @Test("a real server's refusal quotes the user it was given: a user part with a colon is not shown there either (point 8)",
          arguments: StoreKind.allCases)
    func serverMessagesScrubbed(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let url = db.urlText
        let scheme = String(url[..<url.range(of: "://")!.upperBound]), server = String(url[url.range(of: "@")!.lowerBound...])
        let run = try await Self.cli(["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--lookback-hours", "1",
                                      "--database-url", scheme + "app%3AXLEAKX:Wr0ngXLEAKX" + server], sim: sim, store: nil, clock: clock)
        #expect(run.status == 2, "\(run.errors)")
        #expect(!(run.output + run.errors).contains("XLEAKX"), "\(run.errors)")
    }

    // MARK: Exits and summaries (points 9 to 12)

    @Test("--source archive with the archive host down: klines, trades and metrics fail (exit 1) and say why; never caught up (points 9, 10)", arguments: StoreKind.allCases)
    func archiveOnlyHostDown(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let down = try Self.closedArchive()
        let commands = [
            ["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-04"],
            ["trades", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-02"],
            ["metrics", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-04"],
        ]
        for args in commands {
            let run = try await Self.cli(args + ["--source", "archive", "--archive-url", down], sim: sim, store: db, clock: clock)
            #expect(run.status == 1, "\(args[0]): \(run.errors)")
            let unit = try #require(Self.units(run).first, "\(args[0]): \(run.output)")
            #expect(unit["status"] as? String == "failed" && unit["caught_up"] as? Bool == false, "\(args[0]): \(unit)")
            let error = unit["error"] as? String ?? ""
            #expect(error.contains("--source archive") && error.contains("archive host unreachable"), "\(args[0]): \(error)")
            #expect(!run.errors.contains("takes everything from REST") && !run.errors.contains("older than 30 days"), "\(args[0]): \(run.errors)")
            #expect(unit["from_archive"] as? Int == 0 && unit["from_rest"] as? Int == 0, "\(args[0]): \(unit)")
        }
        #expect(try await db.count("klines_h1") == 0)
    }

    @Test("--source auto with the archive host down: REST gives everything, and the summary still says how much came from each (point 14)", arguments: StoreKind.allCases)
    func autoHostDownCounts(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await Self.cli(["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-04",
                                      "--archive-url", try Self.closedArchive()], sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let unit = try #require(Self.units(run).first)
        #expect(unit["from_archive"] as? Int == 0 && unit["from_rest"] as? Int == 72 && unit["caught_up"] as? Bool == true, "\(unit)")
    }

    @Test("SIGTERM with a collector that never answers: the shutdown timeout bounds the trace export too (point 11)")
    func shutdownBoundsTheFlush() async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .slow, every: 1, slowMilliseconds: 300)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        let collector = try LoopbackPort.silent()
        defer { Task { close(collector.fd); await sim.stop(); await db.drop() } }
        let args = ["klines", "--timeframes", "1m", "--symbols", "ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-08",
                    "--api-url", sim.baseURL, "--mysql-uri", db.uriText, "--batch-size", "700", "--max-workers", "1", "--shutdown-timeout", "2"]
        let child = try Programs.Child(try Programs.path("binance-extractor"), args, environment: [
            "OTEL_SDK_DISABLED": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(collector.port)", "OTEL_EXPORTER_OTLP_TIMEOUT": "25000",
            "BINANCE_KLINES_SOURCE": "rest",
        ])
        var written = 0
        for _ in 0..<200 where written == 0 {
            written = try await db.count("klines_m1")
            if written == 0 { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(written > 0)
        let signalled = Date()
        child.signal(SIGTERM)
        let status = await child.wait()
        let took = Date().timeIntervalSince(signalled)
        #expect(status == 1, "stderr: \(child.errors)")
        // --shutdown-timeout 2 bounds everything after the signal; the collector's 25 s timeout does not apply past it.
        #expect(took < 3.5, "took \(took) s to stop")
    }

    @Test("exit statuses agree: an unknown MariaDB host is 2 as on PostgreSQL; a narrow PostgreSQL symbol column is 2 before fetching; a future --since is 2 (point 12)")
    func exitStatusesAgree() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let pg = try await TestStore.make(.postgresql)
        defer { Task { await sim.stop(); await pg.drop() } }
        let base = ["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--lookback-hours", "2", "--source", "rest"]
        for url in ["mysql://u:p@no-such-host.invalid/market", "postgresql://u:p@no-such-host.invalid/market"] {
            let run = try await Self.cli(base + ["--database-url", url], sim: sim, store: nil, clock: clock)
            #expect(run.status == 2, "\(url): \(run.errors)")
        }
        #expect(try await Self.cli(base, sim: sim, store: pg, clock: clock).status == 0)
        try await pg.execute("DELETE FROM klines_h1")
        try await pg.execute("ALTER TABLE klines_h1 ALTER COLUMN symbol TYPE varchar(5)")
        await sim.simulator.resetStatistics()
        let narrow = try await Self.cli(base, sim: sim, store: pg, clock: clock)
        #expect(narrow.status == 2, "\(narrow.errors)")
        #expect(narrow.errors.contains("column symbol is character varying(5)"), "\(narrow.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 0, "refused before fetching")
        // The same on MariaDB, whose strict mode would fail the batch mid-run (1406).
        let maria = try await TestStore.make(.mariadb)
        defer { Task { await maria.drop() } }
        #expect(try await Self.cli(base, sim: sim, store: maria, clock: clock).status == 0)
        try await maria.execute("DELETE FROM klines_h1")
        try await maria.execute("ALTER TABLE klines_h1 MODIFY symbol VARCHAR(5) NOT NULL")
        await sim.simulator.resetStatistics()
        let narrowMaria = try await Self.cli(base, sim: sim, store: maria, clock: clock)
        #expect(narrowMaria.status == 2 && narrowMaria.errors.contains("MODIFY `symbol` VARCHAR(20)"), "\(narrowMaria.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 0, "refused before fetching")
        let since = try await Self.cli(["gaps", "--timeframes", "1h", "--symbols", "BTCUSDT", "--since", "2030-01-01"], sim: sim, store: pg, clock: clock)
        #expect(since.status == 2 && since.errors.contains("--since 2030-01-01 is in the future"), "\(since.errors)")
    }

    // MARK: Weight wasted (point 13)

    @Test("a backfill from long before listing finds the first candle once: no request per day, no 404 per file (point 13)", arguments: StoreKind.allCases)
    func firstCandleFirst(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        // NEWUSDT was listed three days ago; asked from the start of last year.
        let run = try await ArchiveBackfillTests.run(["--timeframes", "1h", "--symbols", "NEWUSDT", "--start", "2023-01-01"],
                                                     source: "auto", sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let listed = try #require(await sim.simulator.market.symbols["NEWUSDT"]?.listedAt)
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: "NEWUSDT", from: listed, through: Self.now)
        let stats = await sim.simulator.statistics
        #expect(stats.klinesRequests <= 4, "\(stats.klinesRequests) klines requests")
        #expect(stats.archiveRequests <= 12, "\(stats.archiveRequests) archive requests")
    }

    @Test("COIN-M: a delivery contract asked from long before its listing costs a few requests, not one per empty window (point 13)", arguments: StoreKind.allCases)
    func coinmFirstCandleFirst(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let contract = try #require(await sim.simulator.market.symbols.values.filter { $0.name.hasPrefix("BTCUSD_2") }.max { $0.listedAt < $1.listedAt })
        let run = try await Self.cli(["klines", "--market", "coinm", "--timeframes", "15m", "--symbols", contract.name, "--start", "2023-01-01",
                                      "--source", "rest"], sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .coinm, interval: .m15), symbol: contract.name, from: contract.listedAt,
                                  through: min(Self.now, contract.delistedAt ?? .max))
        let requests = await sim.simulator.statistics.klinesRequests
        // From 2023-01-01, windows of a page of 15m candles (about 5 days) would ask some 70 empty ones before the listing.
        let pages = Int((Self.now - contract.listedAt) / (Int64(Market.coinm.mostKlinesPerWeightLimit) * 900_000)) + 1
        #expect(requests <= pages + 4, "\(requests) klines requests for \(pages) pages of data")
    }

    // MARK: Small but visible (point 14)

    @Test("gaps --dry-run --summary json prints one JSON object; a refused file's rows are counted once in written; an empty --symbols entry is refused (point 14)", arguments: StoreKind.allCases)
    func smallButVisible(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-02-02.zip": .badCRC])
        let run = try await ArchiveBackfillTests.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-04"],
                                                     source: "auto", sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.errors.contains("CRC-32 mismatch"), "\(run.errors)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: "BTCUSDT",
                                  from: UTCCalendar.parse("2024-02-01")!, through: UTCCalendar.parse("2024-02-04")! - 1)
        let unit = try #require(Self.units(run).first)
        #expect(unit["written"] as? Int == 72 && unit["from_archive"] as? Int == 48 && unit["from_rest"] as? Int == 24, "\(unit)")
        #expect(run.summary["written"] as? Int == 72, "\(run.summary)")

        let gaps = try await Self.cli(["gaps", "--timeframes", "1h", "--symbols", "BTCUSDT", "--dry-run", "--summary", "json"], sim: sim, store: db, clock: clock)
        #expect(gaps.status == 0, "\(gaps.errors)")
        let line = gaps.output.trimmingCharacters(in: .newlines)
        #expect(!line.contains("\n"), "\(gaps.output)")
        let json = try #require((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], "\(gaps.output)")
        let tables = try #require((json["gaps"] as? [String: Any])?["tables"] as? [[String: Any]], "\(json)")
        #expect(tables.first?["table"] as? String == "klines_h1", "\(tables)")

        let empty = try await Self.cli(["klines", "--timeframes", "1h", "--symbols", "BTCUSDT,,ETHUSDT", "--dry-run"], sim: sim, store: nil, clock: clock)
        #expect(empty.status == 2 && empty.errors.contains("has an empty entry"), "\(empty.errors)")
    }

    @Test("unit retries show in the summary's retries", arguments: StoreKind.allCases)
    func unitRetriesCounted(store kind: StoreKind) async throws {
        var configuration = BinanceSimulator.Configuration()
        // Two 503s in a row outlast one request attempt: the unit fails once, then its retry succeeds.
        configuration.faults = [FaultPlan(kind: .http503, every: 1, count: 1)]
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(configuration: configuration, clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await Self.cli(["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--lookback-hours", "5", "--source", "rest",
                                      "--request-attempts", "1", "--unit-retries", "2"], sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let unit = try #require(Self.units(run).first)
        #expect(unit["retries"] as? Int == 1, "\(unit)")
        #expect(run.summary["retries"] as? Int == 1 && run.summary["unit_retries"] as? Int == 1, "\(run.summary)")
    }

    @Test("PostgreSQL: every stderr line is one JSON object (no libpq notices); migrate names every table's ALTER; coverage counts a narrow table (point 14)")
    func postgresVisible() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(.postgresql)
        defer { Task { await sim.stop(); await db.drop() } }
        let args = ["klines", "--timeframes", "1h,15m", "--symbols", "BTCUSDT", "--lookback-hours", "3", "--source", "rest"]
        for round in 0..<2 {
            let run = try await Self.cli(args, sim: sim, store: db, clock: clock)
            #expect(run.status == 0, "\(run.errors)")
            for line in run.errors.split(separator: "\n") {
                #expect(line.hasPrefix("{") && line.hasSuffix("}"), "round \(round): a stderr line is not JSON: \(line)")
            }
        }
        try await db.execute("ALTER TABLE klines_h1 ALTER COLUMN volume TYPE numeric(30,8)")
        try await db.execute("ALTER TABLE klines_m15 ALTER COLUMN volume TYPE numeric(30,8)")
        let migrate = try await Self.cli(["migrate", "--market", "futures", "--timeframes", "1h,15m"], sim: sim, store: db, clock: clock, api: false)
        #expect(migrate.status == 2, "\(migrate.errors)")
        #expect(migrate.errors.contains("ALTER TABLE klines_h1 ALTER COLUMN volume") && migrate.errors.contains("ALTER TABLE klines_m15 ALTER COLUMN volume"),
                "\(migrate.errors)")
        let coverage = await CoverageTests.coverage(["--timeframes", "1h"], store: db, clock: clock)
        #expect(try CoverageTests.series(coverage.output)["klines_h1 BTCUSDT"] != nil, "\(coverage.output) \(coverage.errors)")
    }
}
