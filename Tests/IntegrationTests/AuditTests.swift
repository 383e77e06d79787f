import BinanceAPI
import BinanceArchive
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import Pipeline
import StoreKit
import Telemetry
import TestSupport
import Testing

/// The ledger (`archive_files`, `row_sources`), `coverage`'s files-versus-REST counts and `audit` against binance-sim:
/// files that differ from REST under a matching CHECKSUM, files re-uploaded with a new ETag and Last-Modified, files
/// missing from the archive, and the holes' labels, on both stores.
@Suite("audit: the copy proved exact", .serialized, .timeLimit(.minutes(3)))
struct AuditTests {
    typealias E2E = KlinesEndToEndTests
    static let now = ArchiveBackfillTests.now  // 2024-03-01T12:05:30Z
    static let table = KlineTable(market: .futures, interval: .h1)

    /// Any command against the simulator and the store, its archive URL the simulator's.
    static func cli(_ args: [String], sim: SimulatorFixture, store: TestStore, clock: ManualClock) async throws -> E2E.Run {
        try await clock.drive(step: 100) {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(
                arguments: args + (args.first == "coverage" ? [] : ["--api-url", sim.baseURL]) + ["--database-url", store.urlText],
                environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_ARCHIVE_URL": sim.baseURL],
                context: RunContext(clock: clock, output: out, errors: err))
            return E2E.Run(status: status, output: out.text, errors: err.text)
        }
    }

    static func report(_ run: E2E.Run) throws -> [String: Any] {
        let line = try #require(run.output.split(separator: "\n").last.map(String.init), "no output: \(run.errors)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        return try #require(object["audit"] as? [String: Any], "\(line)")
    }

    @Test("every file read is in archive_files with its ETag, Last-Modified, size and SHA-256; row_sources and coverage say files versus REST; a missing file is an archive_hole",
          arguments: StoreKind.allCases)
    func ledger(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-02-10.zip": .missing])
        let run = try await ArchiveBackfillTests.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-01-01"], source: "auto",
                                                     sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let files = try await db.query("SELECT path, etag, last_modified, size_bytes, sha256, rows_read, rows_written, table_name, build_version FROM archive_files ORDER BY path")
        // January's monthly file and February's daily files but the 10th.
        #expect(files.count == 1 + 28, "\(files.count)")
        for file in files {
            #expect(file[1]?.hasPrefix("\"") == true && file[2]?.hasSuffix("GMT") == true && (file[3].flatMap { Int($0) } ?? 0) > 0, "\(file)")
            #expect(file[4]?.count == 64 && file[7] == "klines_h1" && file[8] == "0.1.0", "\(file)")
        }
        let monthly = try #require(files.first { $0[0]?.hasSuffix("BTCUSDT-1h-2024-01.zip") == true })
        #expect(monthly[5] == "744" && monthly[6] == "744")
        let sources = try await db.query("SELECT source, SUM(row_count) FROM row_sources WHERE table_name = 'klines_h1' GROUP BY source ORDER BY source")
        let bySource = Dictionary(uniqueKeysWithValues: sources.compactMap { r in r[0].flatMap { s in r[1].flatMap { Int($0) }.map { (s, $0) } } })
        #expect(bySource == ["archive": (31 + 28) * 24, "archive_hole": 24, "rest": 12], "\(sources)")

        let coverage = try await Self.cli(["coverage", "--format", "json"], sim: sim, store: db, clock: clock)
        let line = try #require(coverage.output.split(separator: "\n").last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let series = try #require((object["series"] as? [[String: Any]])?.first { $0["table"] as? String == "klines_h1" })
        #expect(series["from_files"] as? Int == (31 + 28) * 24 && series["from_rest"] as? Int == 36 && series["from_rest_for_file_holes"] as? Int == 24, "\(series)")

        let audit = try await Self.cli(["audit", "--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-02-09", "--end", "2024-02-12", "--format", "json"],
                                       sim: sim, store: db, clock: clock)
        #expect(audit.status == 0, "\(audit.output) \(audit.errors)")
        let report = try Self.report(audit)
        #expect(report["verdict"] as? String == "exact" && report["rows_compared"] as? Int == 72, "\(report)")
        let labels = try #require(report["holes_by_label"] as? [String: [String: Any]])
        #expect(labels["archive_hole"]?["rows"] as? Int == 24 && labels["local_miss"]?["ranges"] as? Int == 0, "\(labels)")
        #expect((report["weight_spent"] as? Int ?? 0) > 0)

        // The archive host gone: the recheck is incomplete (exit 1), naming a few files and counting the rest.
        let unreachable = try await Self.cli(["audit", "--recheck-archives", "--archive-url", "http://127.0.0.1:1", "--format", "json"],
                                             sim: sim, store: db, clock: clock)
        let failed = try Self.report(unreachable)
        let failures = try #require(failed["failures"] as? [String])
        #expect(unreachable.status == 1 && failed["verdict"] as? String == "incomplete", "\(failed)")
        #expect(failures.count == 6 && failures.last == "24 more files: HEAD failed", "\(failures)")
    }

    @Test("a file that differs from REST under a matching CHECKSUM: audit lists each value (exit 3); --fix writes REST's (exit 0); a re-upload is found by --recheck-archives and its changed rows written",
          arguments: StoreKind.allCases)
    func differsAndReupload(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-01.zip": .differs(rows: 3), "ETHUSDT-1h-2024-01.zip": .differs(rows: 2)])
        let run = try await ArchiveBackfillTests.run(["--timeframes", "1h", "--symbols", "BTCUSDT,ETHUSDT", "--start", "2024-01-01"], source: "auto",
                                                     sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let january = ["audit", "--timeframes", "1h", "--start", "2024-01-01", "--end", "2024-02-01", "--format", "json"]

        let found = try await Self.cli(january, sim: sim, store: db, clock: clock)
        #expect(found.status == 3, "\(found.output) \(found.errors)")
        var report = try Self.report(found)
        #expect(report["verdict"] as? String == "differences" && report["differences"] as? Int == 5 && report["rows_compared"] as? Int == 2 * 744, "\(report)")
        let listed = try #require(report["listed"] as? [[String: Any]])
        let first = try #require(listed.first { $0["symbol"] as? String == "BTCUSDT" })
        #expect(first["table"] as? String == "klines_h1" && first["column"] as? String == "volume" && first["time"] as? String == "2024-01-01T00:00:00.000Z")
        let stored = try #require(first["stored"] as? String), rest = try #require(first["rest"] as? String)
        #expect(stored.hasPrefix(rest) && stored.count == rest.count + (rest.contains(".") ? 1 : 2), "\(stored) vs \(rest)")

        // ETHUSDT: REST's values written.
        let fixed = try await Self.cli(january + ["--symbols", "ETHUSDT", "--fix"], sim: sim, store: db, clock: clock)
        #expect(fixed.status == 0, "\(fixed.output)")
        report = try Self.report(fixed)
        #expect(report["verdict"] as? String == "repaired" && report["fixed_rows"] as? Int == 2, "\(report)")
        try await E2E.expectExact(db, sim, table: Self.table, symbol: "ETHUSDT", from: UTCCalendar.parse("2024-01-01")!, through: Self.now)

        // BTCUSDT: Binance uploads the corrected file; the nightly recheck finds it by its validators and writes the three rows.
        let unchanged = try await Self.cli(["audit", "--recheck-archives", "--format", "json"], sim: sim, store: db, clock: clock)
        report = try Self.report(unchanged)
        #expect(unchanged.status == 0 && report["files_rechecked"] as? Int == 2 * 30 && (report["files_changed"] as? [Any])?.isEmpty == true, "\(report)")
        #expect(report["weight_spent"] as? Int == 0, "HEAD requests to the archive host spend no weight")
        clock.advance(by: 86_400_000)
        await sim.simulator.reupload("BTCUSDT-1h-2024-01.zip")
        let rechecked = try await Self.cli(["audit", "--recheck-archives", "--format", "json"], sim: sim, store: db, clock: clock)
        #expect(rechecked.status == 0, "\(rechecked.output) \(rechecked.errors)")
        report = try Self.report(rechecked)
        let changed = try #require((report["files_changed"] as? [[String: Any]])?.first, "\(report)")
        #expect((changed["path"] as? String)?.hasSuffix("BTCUSDT-1h-2024-01.zip") == true && changed["rows_changed"] as? Int == 3, "\(changed)")
        try await E2E.expectExact(db, sim, table: Self.table, symbol: "BTCUSDT", from: UTCCalendar.parse("2024-01-01")!, through: Self.now - 3_600_000)
        let ledger = try await db.query("SELECT last_modified FROM archive_files WHERE path LIKE '%BTCUSDT-1h-2024-01.zip'")
        #expect(ledger.first?.first??.contains("02 Mar 2024") == true, "the new Last-Modified is recorded: \(ledger)")
        let after = try await Self.cli(january, sim: sim, store: db, clock: clock)
        let verdict = try Self.report(after)["verdict"] as? String
        #expect(after.status == 0 && verdict == "exact", "\(after.output)")
    }

    @Test("holes: a stretch deleted locally is local_miss (and missing rows in the comparison); --prefer archive keeps differing values, writes missing rows",
          arguments: StoreKind.allCases)
    func holesAndPreferArchive(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-1h-2024-02-05.zip": .differs(rows: 1)])
        let run = try await ArchiveBackfillTests.run(["--timeframes", "1h", "--symbols", "BTCUSDT", "--start", "2024-02-01"], source: "auto",
                                                     sim: sim, store: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let from = UTCCalendar.parse("2024-02-06T03:00")!
        try await db.deleteKlines("klines_h1", symbol: "BTCUSDT", from: from, through: from + 4 * 3_600_000)
        let args = ["audit", "--timeframes", "1h", "--start", "2024-02-05", "--end", "2024-02-07", "--format", "json"]
        let found = try await Self.cli(args, sim: sim, store: db, clock: clock)
        #expect(found.status == 3)
        var report = try Self.report(found)
        #expect(report["differences"] as? Int == 1 + 5, "\(report)")
        let labels = try #require(report["holes_by_label"] as? [String: [String: Any]])
        #expect(labels["local_miss"]?["ranges"] as? Int == 1 && labels["local_miss"]?["rows"] as? Int == 5, "\(labels)")
        let kept = try await Self.cli(args + ["--fix", "--prefer", "archive"], sim: sim, store: db, clock: clock)
        report = try Self.report(kept)
        #expect(kept.status == 0 && report["fixed_rows"] as? Int == 5 && report["kept_rows"] as? Int == 1, "\(report)")
        #expect(try await db.klines(table: Self.table, symbol: "BTCUSDT").count == (29 + 0) * 24 + 12, "the deleted candles are back")
    }

    @Test("trades are audited by id: a file's differing quantities are listed and fixed", arguments: StoreKind.allCases)
    func tradesById(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setArchiveFaults(["BTCUSDT-aggTrades-2024-02-28.zip": .differs(rows: 2)])
        let trades = try await Self.cli(["trades", "--symbols", "BTCUSDT", "--source", "auto", "--start", "2024-02-28", "--end", "2024-02-29"],
                                        sim: sim, store: db, clock: clock)
        #expect(trades.status == 0, "\(trades.errors)")
        let args = ["audit", "--symbols", "BTCUSDT", "--start", "2024-02-28", "--end", "2024-02-29", "--format", "json"]
        let found = try await Self.cli(args, sim: sim, store: db, clock: clock)
        let report = try Self.report(found)
        #expect(found.status == 3 && report["differences"] as? Int == 2, "\(report)")
        let listed = try #require((report["listed"] as? [[String: Any]])?.first)
        #expect(listed["table"] as? String == "agg_trades" && listed["column"] as? String == "quantity" && listed["id"] != nil, "\(listed)")
        let fixed = try await Self.cli(args + ["--fix"], sim: sim, store: db, clock: clock)
        #expect(fixed.status == 0, "\(fixed.output)")
        let again = try await Self.cli(args, sim: sim, store: db, clock: clock)
        let verdict = try Self.report(again)["verdict"] as? String
        #expect(again.status == 0 && verdict == "exact", "\(again.output)")
    }

    @Test("funding and metrics are audited as klines are; an outage Binance confirmed, or REST has nothing of, is exchange_downtime", arguments: StoreKind.allCases)
    func fundingMetricsAndDowntime(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let outage = UTCCalendar.parse("2024-02-27T03:00")!
        await sim.simulator.setOutages([outage..<(outage + 3 * 3_600_000)])
        for args in [["klines", "--timeframes", "1h", "--source", "rest"], ["funding"], ["metrics", "--source", "rest"]] {
            let run = try await Self.cli(args + ["--symbols", "BTCUSDT", "--start", "2024-02-25"], sim: sim, store: db, clock: clock)
            #expect(run.status == 0, "\(args): \(run.errors)")
        }
        func at(_ text: String) -> String { kind == .postgresql ? "'\(text)+00'" : "'\(text)'" }
        try await db.execute("UPDATE funding_rates SET funding_rate = funding_rate + 1 WHERE symbol = 'BTCUSDT' AND funding_time = \(at("2024-02-26 08:00:00"))")
        try await db.execute("UPDATE futures_metrics SET sum_open_interest = sum_open_interest + 1 WHERE symbol = 'BTCUSDT' AND metric_time = \(at("2024-02-26 00:00:00"))")
        let args = ["audit", "--symbols", "BTCUSDT", "--start", "2024-02-25", "--end", "2024-03-01", "--format", "json"]
        let found = try await Self.cli(args, sim: sim, store: db, clock: clock)
        var report = try Self.report(found)
        #expect(found.status == 3 && report["differences"] as? Int == 2, "\(report)")
        let columns = Set((report["listed"] as? [[String: Any]] ?? []).compactMap { $0["column"] as? String })
        #expect(columns == ["funding_rate", "sum_open_interest"], "\(columns)")
        let labels = try #require(report["holes_by_label"] as? [String: [String: Any]])
        // klines_h1: 3 candles Binance confirmed empty when the run crossed them; futures_metrics: 36 five-minute rows this
        // audit asked REST for and found none of.
        #expect(labels["exchange_downtime"]?["ranges"] as? Int == 2 && labels["exchange_downtime"]?["rows"] as? Int == 3 + 36, "\(labels)")
        #expect(labels["local_miss"]?["ranges"] as? Int == 0, "\(report["holes"] ?? [])")
        let fixed = try await Self.cli(args + ["--fix"], sim: sim, store: db, clock: clock)
        report = try Self.report(fixed)
        #expect(fixed.status == 0 && report["fixed_rows"] as? Int == 2, "\(report)")
        let again = try await Self.cli(args, sim: sim, store: db, clock: clock)
        let verdict = try Self.report(again)["verdict"] as? String
        #expect(again.status == 0 && verdict == "exact", "\(again.output)")
    }

    @Test("bad input is exit 2 naming the value, before anything is read")
    func badInput() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(.mariadb)
        defer { Task { await sim.stop(); await db.drop() } }
        for (args, says) in [(["--sample", "0"], "--sample 0"), (["--prefer", "archive"], "--prefer"), (["--fix", "--prefer", "files"], "'files'"),
                             (["--sample", "3", "--start", "2024-01-01"], "--sample and --start"), (["--format", "xml"], "'xml'"),
                             (["--dry-run"], "no --dry-run"), (["--max-listed=-1"], "--max-listed -1")] {
            let run = try await Self.cli(["audit"] + args, sim: sim, store: db, clock: clock)
            #expect(run.status == 2 && run.errors.contains(says), "\(args): \(run.errors)")
        }
        #expect(await sim.simulator.statistics.klinesRequests == 0)
    }

}
