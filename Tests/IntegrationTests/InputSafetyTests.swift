import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import OTLPReceiver
import StoreKit
import Telemetry
import TestSupport
import Testing

/// Secrets, wrong URLs, missing privileges and closed pipes, against binance-sim, a real MariaDB and a real collector.
@Suite("Secrets, exit codes and closed pipes", .serialized, .timeLimit(.minutes(3)))
struct InputSafetyTests {
    typealias E2E = KlinesEndToEndTests

    @Test("credentials in --api-url reach neither the log nor any span's url.full; a bad database URI's password is not in the trace")
    func apiCredentials() async throws {
        let (receiver, sim, db, clock) = try await TelemetryTests.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        let api = sim.baseURL.replacingOccurrences(of: "http://", with: "http://apiuser:ap1S3cret@")
        let out = LineSink(), err = LineSink()
        let status = await ExtractorCLI.run(
            arguments: ["klines", "--api-url", api, "--mysql-uri", db.uriText, "--timeframes", "15m", "--symbols", "BTCUSDT",
                        "--insecure-skip-tls-verify"],
            environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint], context: RunContext(clock: clock, output: out, errors: err))
        #expect(status == 0, "\(err.text)")
        #expect(!(out.text + err.text).contains("ap1S3cret"), "\(err.text)")
        #expect(err.text.contains("REDACTED:REDACTED"))
        let bodies = await receiver.bodies(path: "/v1/traces")
        let spans = TraceTree.spans(in: bodies)
        let urls = spans.compactMap { $0.attributes["url.full"] }
        #expect(!urls.isEmpty)
        #expect(urls.allSatisfy { $0.contains("REDACTED:REDACTED@") && !$0.contains("ap1S3cret") }, "\(urls.prefix(2))")
        #expect(!bodies.map { String(decoding: $0, as: UTF8.self) }.joined().contains("ap1S3cret"))

        // A URI without a scheme: the error and the exported exception.message mask its password.
        let err2 = LineSink()
        let bad = await ExtractorCLI.run(arguments: ["klines", "--api-url", sim.baseURL, "--timeframes", "15m", "--symbols", "BTCUSDT"],
                                         environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint,
                                                       "MYSQL_URI": "root:S3cretPW@127.0.0.1:3306/db"],
                                         context: RunContext(clock: clock, output: LineSink(), errors: err2))
        #expect(bad == 2)
        #expect(!err2.text.contains("S3cretPW"), "\(err2.text)")
        let all = await receiver.bodies(path: "/v1/traces").map { String(decoding: $0, as: UTF8.self) }.joined()
        #expect(all.contains("exception.message") && !all.contains("S3cretPW"))
    }

    @Test("an --api-url whose path answers 404 is exit 2 before any klines request")
    func apiPath404() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await E2E.extract(["--timeframes", "15m", "--symbols", "BTCUSDT"], api: sim.baseURL + "/binance", uri: db.uriText, clock: clock)
        #expect(run.status == 2, "\(run.errors)")
        #expect(run.errors.contains("does not answer as Binance's REST API"), "\(run.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 0)
        #expect(await sim.simulator.statistics.requests == 1, "one exchangeInfo request, no retries")
    }

    @Test("a database user without INSERT/UPDATE privilege is exit 2 before any fetch, naming the grant")
    func missingPrivilege() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        // Tables exist (a first run as root), then a reader account tries to run the job.
        let first = await E2E.extract(["--timeframes", "15m", "--symbols", "BTCUSDT"], sim: sim, db: db, clock: clock)
        #expect(first.status == 0, "\(first.errors)")
        let name = try #require(db.uriText.split(separator: "/").last.map(String.init))
        let user = "reader_\(UInt32.random(in: 0..<UInt32.max))"
        try await db.execute("CREATE USER '\(user)'@'%' IDENTIFIED BY 'rd'")
        try await db.execute("GRANT SELECT ON `\(name)`.* TO '\(user)'@'%'")
        defer { Task { try? await db.execute("DROP USER '\(user)'@'%'") } }
        let uri = db.uriText.replacingOccurrences(of: "//root:test@", with: "//\(user):rd@")
        await sim.simulator.resetStatistics()
        let before = try await db.count("klines_m15")
        let run = await E2E.extract(["--timeframes", "15m", "--symbols", "BTCUSDT"], api: sim.baseURL, uri: uri, clock: clock)
        #expect(run.status == 2, "\(run.errors)")
        #expect(run.errors.contains("1142") && run.errors.contains("GRANT"), "\(run.errors)")
        #expect(await sim.simulator.statistics.requests == 0, "nothing fetched")
        #expect(try await db.count("klines_m15") == before)
    }

    @Test("stdout and stderr closed by their reader: the run writes its data and exits 0 (a real process)")
    func closedPipes() async throws {
        let sim = try await SimulatorFixture.start()
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Programs.path("binance-extractor"))
        process.arguments = ["klines", "--api-url", sim.baseURL, "--mysql-uri", db.uriText, "--timeframes", "15m",
                             "--symbols", "BTCUSDT,ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-03", "--log-level", "debug"]
        var env = ProcessInfo.processInfo.environment
        env["OTEL_SDK_DISABLED"] = "true"
        env["BINANCE_KLINES_SOURCE"] = env["BINANCE_KLINES_SOURCE"] ?? "rest"  // REST behaviour; archive tests ask for auto
        process.environment = env
        // Both pipes' read ends are closed before the child writes a byte (`| head -0`).
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        try out.fileHandleForReading.close()
        try err.fileHandleForReading.close()
        let status: Int32 = await withCheckedContinuation { c in
            DispatchQueue.global().async { process.waitUntilExit(); c.resume(returning: process.terminationStatus) }
        }
        #expect(process.terminationReason == .exit, "killed by a signal")
        #expect(status == 0)
        #expect(try await db.count("klines_m15") == 2 * 2 * 96)
    }
}
