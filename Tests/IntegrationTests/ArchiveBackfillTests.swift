import BinanceAPI
import BinanceArchive
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import HTTPTransport
import OTLPReceiver
import Pipeline
import StoreKit
import Telemetry
import TestSupport
import Testing

/// `klines --source auto|archive|rest` against binance-sim's REST endpoints and archive tree, into a real MariaDB:
/// rows from files are the rows REST would have stored, and a file that is missing, wrong or incomplete never
/// leaves a hole.
@Suite("klines from the archives", .serialized, .timeLimit(.minutes(3)))
struct ArchiveBackfillTests {
    typealias E2E = KlinesEndToEndTests
    static let now = E2E.now  // 2024-03-01T12:05:30Z: January's monthly file is out, February's not yet

    static func run(_ args: [String], source: String, sim: SimulatorFixture, db: TestDatabase, clock: ManualClock) async throws -> E2E.Run {
        try await run(args, source: source, sim: sim, store: TestStore(db), clock: clock)
    }

    /// The same on either store.
    static func run(_ args: [String], source: String, sim: SimulatorFixture, store: TestStore, clock: ManualClock) async throws -> E2E.Run {
        try await clock.drive(step: 100) {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(
                arguments: ["klines", "--api-url", sim.baseURL, "--database-url", store.urlText, "--source", source] + args,
                environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_ARCHIVE_URL": sim.baseURL],
                context: RunContext(clock: clock, output: out, errors: err))
            return E2E.Run(status: status, output: out.text, errors: err.text)
        }
    }

    static func units(_ run: E2E.Run) -> [[String: Any]] { NeverStuckTests.units(run) }

    @Test("auto: January from its monthly file, February's days from daily files (its monthly file is not out yet), today from REST; exact", arguments: StoreKind.allCases)
    func autoExact(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT,ETHUSDT", "--start", "2024-01-01"], source: "auto",
                                     sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        for symbol in ["BTCUSDT", "ETHUSDT"] {
            try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: symbol,
                                      from: UTCCalendar.parse("2024-01-01")!, through: Self.now)
        }
        let unit = try #require(Self.units(run).first)
        // 1 monthly file + 29 daily files; today's 12 closed hours from REST.
        #expect(unit["archive_files"] as? Int == 30, "\(unit)")
        #expect(unit["from_archive"] as? Int == (31 + 29) * 24 && unit["from_rest"] as? Int == 12, "\(unit)")
        let stats = await sim.simulator.statistics
        #expect(stats.klinesRequests == 2, "one REST page per symbol, for today")
        #expect(stats.archiveDownloads == 2 * 30)
    }

    struct Era: Sendable, CustomTestStringConvertible {
        let market: Market
        let now: Int64
        var testDescription: String { "\(market.rawValue) at \(UTCCalendar.iso8601(now))" }
    }

    @Test("a table fed from files equals one fed by REST, byte for byte, on both markets and both sides of 2025-01-01",
          arguments: [Era(market: .futures, now: Self.now), Era(market: .spot, now: Self.now),
                      Era(market: .spot, now: UTCCalendar.parse("2025-02-03T12:05:30")!),
                      Era(market: .futures, now: UTCCalendar.parse("2025-02-03T12:05:30")!)])
    func filesEqualREST(_ era: Era) async throws {
        let clock = ManualClock(now: era.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let fromFiles = try await TestDatabase.make(), fromREST = try await TestDatabase.make()
        defer { Task { await sim.stop(); await fromFiles.drop(); await fromREST.drop() } }
        // The month before from its monthly file, this month's days from daily files, today from REST.
        let today = era.now - era.now % 86_400_000
        let start = UTCCalendar.iso8601(UTCCalendar.startOfMonth(containing: today - 5 * 86_400_000) - 86_400_000 * 3)
        let args = ["--market", era.market.rawValue, "--timeframes", "1h", "--symbols", "BTCUSDT", "--start", String(start.prefix(10))]
        let auto = try await Self.run(args, source: "auto", sim: sim, db: fromFiles, clock: clock)
        #expect(auto.status == 0, "\(auto.errors)")
        let unit = try #require(Self.units(auto).first)
        #expect((unit["archive_files"] as? Int ?? 0) >= 3 && (unit["from_archive"] as? Int ?? 0) > 24 * 28, "\(unit)")
        let rest = try await Self.run(args, source: "rest", sim: sim, db: fromREST, clock: clock)
        #expect(rest.status == 0, "\(rest.errors)")
        let table = KlineTable(market: era.market, interval: .h1).name
        let select = "SELECT * FROM `\(table)` ORDER BY symbol, open_time"
        let a = try await fromFiles.query(select), b = try await fromREST.query(select)
        #expect(a.count == b.count && a.count > 24 * 28, "\(a.count) rows from files, \(b.count) from REST")
        #expect(a == b, "rows fed from archive files differ from rows fed by REST")
    }

    @Test("a wrong CHECKSUM, a missing day, an incomplete file and one out of order: REST fills what lacks, the data ends exact")
    func faultsFilledFromREST() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults([
            "BTCUSDT-15m-2024-02-03.zip": .wrongChecksum, "BTCUSDT-15m-2024-02-05.zip": .missing,
            "BTCUSDT-15m-2024-02-07.zip": .incomplete(rows: 40), "BTCUSDT-15m-2024-02-09.zip": .damaged(times: 1),
            "BTCUSDT-15m-2024-02-10.zip": .disordered,
        ])
        let run = try await Self.run(["--timeframes", "15m", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-11"],
                                     source: "auto", sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m15), symbol: "BTCUSDT",
                                  from: UTCCalendar.parse("2024-02-01")!, through: UTCCalendar.parse("2024-02-11")! - 1)
        #expect(run.errors.contains("BTCUSDT-15m-2024-02-03.zip does not match its CHECKSUM, twice"), "\(run.errors)")
        #expect(run.errors.contains("archive file rows out of order; sorted"), "\(run.errors)")
        let unit = try #require(Self.units(run).first)
        // Days 3 and 5 (96 each) and the 56 candles day 7's file lacked came from REST; day 9's second download was whole;
        // day 10's rows out of order and repeated were sorted, nothing of it from REST.
        #expect(unit["from_rest"] as? Int == 96 + 96 + 56, "\(unit)")
        #expect(unit["from_archive"] as? Int == 10 * 96 - (96 + 96 + 56), "\(unit)")
    }

    @Test("archive only: what the files lack is reported, not fetched, and the unit fails naming it (exit 1); rest: no file is read")
    func archiveOnlyAndRestOnly() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-02-02.zip": .missing])
        let only = try await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-04"],
                                      source: "archive", sim: sim, db: db, clock: clock)
        // What archive-only mode could not get is no "ok": exit 1, the unit failed, naming the rows and the file.
        #expect(only.status == 1, "\(only.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 0)
        let unit = try #require(Self.units(only).first)
        #expect(unit["archive_lacked"] as? Int == 24 && unit["status"] as? String == "failed" && unit["caught_up"] as? Bool == false, "\(unit)")
        #expect((unit["error"] as? String ?? "").contains("--source archive: 24 rows between 2024-02-02T00:00:00.000Z and 2024-02-02T23:00:00.000Z are in no archive file")
                && (unit["error"] as? String ?? "").contains("BTCUSDT-1h-2024-02-02.zip: not published (404)"), "\(unit)")
        #expect(only.errors.contains("the files lacked candles of the range"))
        #expect(try await db.count("klines_h1") == 48)

        await sim.simulator.resetStatistics()
        let rest = try await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-04"],
                                      source: "rest", sim: sim, db: db, clock: clock)
        #expect(rest.status == 0)
        let stats = await sim.simulator.statistics
        #expect(stats.archiveRequests == 0 && stats.klinesRequests == 1)
        #expect(try await db.count("klines_h1") == 72)
    }

    @Test("--dry-run lists the files (size from HEAD) and the REST ranges left, downloads no file and writes nothing")
    func dryRunListsFiles() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-02-02.zip": .missing])
        let run = try await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-02-04", "--dry-run"],
                                     source: "auto", sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let unit = try #require(Self.units(run).first)
        let files = try #require(unit["archive_files_planned"] as? [[String: Any]], "\(unit)")
        // January's monthly file; February's is not out, so its days 1 and 3 (day 2 is missing) and no more (--end).
        #expect(files.map { $0["file"] as? String } == ["BTCUSDT-1h-2024-01.zip", "BTCUSDT-1h-2024-02-01.zip", "BTCUSDT-1h-2024-02-03.zip"])
        let zip = try await CurlHTTPClient(options: .init(workers: 1)).get(sim.baseURL + "/data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01.zip").body
        #expect(files.first?["bytes"] as? Int == zip.count, "the size is the file's")
        let ranges = try #require(unit["rest_ranges"] as? [[String: String]])
        #expect(ranges == [["from": "2024-02-02T00:00:00.000Z", "to": "2024-02-02T23:00:00.000Z"]], "the missing day, from REST")
        let stats = await sim.simulator.statistics
        #expect(stats.archiveDownloads == 1, "only this test's own download: the dry run asked HEAD")
        #expect(((try? await db.count("klines_h1")) ?? 0) == 0)
    }

    @Test("gaps: a hole of several days is filled from daily files, its partial days from REST; exact")
    func gapsFromArchives() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let fill = try await Self.run(["--timeframes", "15m", "--symbols", "BTCUSDT", "--start", "2024-02-01"], source: "rest", sim: sim, db: db, clock: clock)
        #expect(fill.status == 0, "\(fill.errors)")
        try await db.execute("DELETE FROM klines_m15 WHERE open_time >= '2024-02-10 06:00:00' AND open_time < '2024-02-14 06:00:00'")
        await sim.simulator.resetStatistics()
        let run = try await clock.drive(step: 100) {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(
                arguments: ["gaps", "--timeframe", "15m", "--symbols", "BTCUSDT", "--api-url", sim.baseURL, "--mysql-uri", db.uriText,
                            "--source", "auto", "--summary", "json"],
                environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_ARCHIVE_URL": sim.baseURL],
                context: RunContext(clock: clock, output: out, errors: err))
            return E2E.Run(status: status, output: out.text, errors: err.text)
        }
        #expect(run.status == 0, "\(run.errors)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m15), symbol: "BTCUSDT",
                                  from: UTCCalendar.parse("2024-02-01")!, through: Self.now)
        let unit = try #require(Self.units(run).first)
        // Days 11, 12 and 13 from their files; 18 hours of day 10 and 6 of day 14 from REST.
        #expect(unit["archive_files"] as? Int == 3 && unit["from_archive"] as? Int == 3 * 96 && unit["from_rest"] as? Int == 96, "\(unit)")
        #expect(await sim.simulator.statistics.archiveDownloads == 3)
    }

    @Test("--from-listing with archives: the listing candle from REST, then files, then REST; exact", arguments: StoreKind.allCases)
    func fromListing(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        // NEWUSDT was listed three days before today: its days come from daily files.
        let run = try await Self.run(["--timeframes", "1h", "--symbols", "NEWUSDT", "--from-listing"], source: "auto", sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let listed = KlineInterval.d1.openTime(containing: Self.now) - 3 * 86_400_000
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: "NEWUSDT", from: listed, through: Self.now)
        let unit = try #require(Self.units(run).first)
        #expect(unit["archive_files"] as? Int == 3 && unit["from_archive"] as? Int == 72, "\(unit)")
    }

    @Test("a span per archive file beneath its unit, with the file and what it gave; the trace is valid OTLP")
    func spansPerFile() async throws {
        let (receiver, sim, db, clock) = try await TelemetryTests.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-02-02.zip": .wrongChecksum])
        let out = LineSink(), err = LineSink()
        let status = try await clock.drive(step: 100) {
            await ExtractorCLI.run(arguments: ["klines", "--api-url", sim.baseURL, "--mysql-uri", db.uriText, "--timeframes", "1h",
                                               "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-04"],
                                   environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint, "BINANCE_ARCHIVE_URL": sim.baseURL],
                                   context: RunContext(clock: clock, output: out, errors: err))
        }
        #expect(status == 0, "\(err.text)")
        let bodies = await receiver.bodies(path: "/v1/traces")
        let files = TraceTree.spans(in: bodies).filter { $0.name == "read archive file" }
        #expect(files.map { $0.attributes["binance.archive.file"] ?? "" }.sorted()
                == ["BTCUSDT-1h-2024-02-01.zip", "BTCUSDT-1h-2024-02-02.zip", "BTCUSDT-1h-2024-02-03.zip"])
        #expect(files.first { $0.attributes["binance.archive.file"] == "BTCUSDT-1h-2024-02-02.zip" }?.attributes["binance.archive.result"] == "refused")
        #expect(try OTLPValidation.validateTraces(bodies).passed)
    }

    @Test("an incremental run that needs only the last minutes never touches the archives")
    func incrementalNoArchive() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        _ = try await Self.run(["--timeframes", "15m", "--symbols", "BTCUSDT"], source: "auto", sim: sim, db: db, clock: clock)
        clock.advance(by: 30 * 60_000)
        await sim.simulator.resetStatistics()
        let again = try await Self.run(["--timeframes", "15m", "--symbols", "BTCUSDT"], source: "auto", sim: sim, db: db, clock: clock)
        #expect(again.status == 0)
        #expect(await sim.simulator.statistics.archiveRequests == 0)
    }

    @Test("an unreachable archive host: one warning, everything from REST, exact")
    func unreachableArchive() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let port = try LoopbackPort.closed()
        let out = LineSink(), err = LineSink()
        let status = try await clock.drive(step: 100) {
            await ExtractorCLI.run(arguments: ["klines", "--api-url", sim.baseURL, "--mysql-uri", db.uriText, "--timeframes", "1h",
                                               "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-02-10"],
                                   environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_ARCHIVE_URL": "http://127.0.0.1:\(port)"],
                                   context: RunContext(clock: clock, output: out, errors: err))
        }
        #expect(status == 0, "\(err.text)")
        #expect(err.text.components(separatedBy: "the archive host cannot be reached").count == 2, "one warning")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .h1), symbol: "BTCUSDT",
                                  from: UTCCalendar.parse("2024-02-01")!, through: UTCCalendar.parse("2024-02-10")! - 1)
    }

    @Test("planning: whole closed months, then whole closed days, the rest REST; long candles REST only")
    func planning() throws {
        let btc = try Symbol(validating: "BTCUSDT")
        let start = UTCCalendar.parse("2023-12-15T06:00")!, end = Self.now
        let segments = ArchivePlanner.segments(market: .futures, symbol: btc, interval: .m1, start: start, end: end, now: Self.now)
        guard case .rest(let s0, let e0) = segments.first else { Issue.record("\(segments)"); return }
        #expect(s0 == start && e0 == UTCCalendar.parse("2023-12-16")! - 60_000)
        let files = segments.compactMap { if case .file(let f) = $0 { f.fileName } else { nil } }
        #expect(files.first == "BTCUSDT-1m-2023-12-16.zip" && files.contains("BTCUSDT-1m-2024-01.zip") && files.contains("BTCUSDT-1m-2024-02.zip"))
        #expect(files.count == 16 + 1 + 1, "16 days of December, January and February as months")
        guard case .rest(let s1, let e1) = segments.last else { Issue.record("\(segments)"); return }
        #expect(s1 == UTCCalendar.parse("2024-03-01")! && e1 == end)
        #expect(ArchivePlanner.segments(market: .futures, symbol: btc, interval: .w1, start: start, end: end, now: Self.now) == [.rest(start: start, end: end)])
    }
}
