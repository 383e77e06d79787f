import BinanceAPI
import BinanceSimulator
import BuildInfo
import Clocks
import Foundation
import MariaDBStore
import StoreKit
import TestSupport
import Testing

@Suite("Process signals and exit statuses", .serialized, .timeLimit(.minutes(3)))
struct SignalTests {
    @Test("SIGTERM mid-run flushes whole batches, exits 1 promptly, and the next run completes the data exactly")
    func sigtermMidRun() async throws {
        var configuration = BinanceSimulator.Configuration()
        // Every klines answer takes 300 ms, so the run is still going when the signal comes.
        configuration.faults = [FaultPlan(kind: .slow, every: 1, slowMilliseconds: 300)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let uri = db.uriText
        // 7 days of 1m candles: 21 pages, about 6 s at 300 ms a page.
        let args = ["klines", "--timeframes", "1m", "--symbols", "ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-08",
                    "--api-url", sim.baseURL, "--mysql-uri", uri, "--batch-size", "700", "--max-workers", "1"]
        // The user's default environment: no OTEL variable, so telemetry looks for a collector at the default endpoint.
        let child = try Programs.Child(try Programs.path("binance-extractor"), args, environment: ["OTEL_SDK_DISABLED": ""])

        // Wait (bounded) until the run has written something, then stop it.
        var written = 0
        for _ in 0..<200 where written == 0 {
            written = try await db.count("klines_m1")
            if written == 0 { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(written > 0, "the run wrote nothing before the deadline")
        let signalled = Date()
        child.signal(SIGTERM)
        let status = await child.wait()
        let took = Date().timeIntervalSince(signalled)
        #expect(status == 1, "stderr: \(child.errors)")
        // Neither the database nor a collector hangs: the process ends within 2 s of the signal.
        #expect(took < 2, "took \(took) s to stop")
        #expect(child.output.contains("\"status\":\"interrupted\""), "stdout: \(child.output)")
        #expect(child.errors.contains("shutdown requested"))

        // What was written is exact and has no hole: a prefix of the range.
        let start = UTCCalendar.parse("2024-01-01")!, end = UTCCalendar.parse("2024-01-08")! - 1
        let expected = await sim.simulator.expectedKlines(symbol: "ETHUSDT", interval: .m1, from: start, through: end)
        let table = KlineTable(market: .futures, interval: .m1)
        let stored = try await KlineStore(pool: db.pool).klines(table: table, symbol: try Symbol(validating: "ETHUSDT"))
        #expect(stored.count < expected.count, "the run should have been stopped before the end")
        #expect(zip(stored, expected).allSatisfy { $0.matches($1) })

        // The next run completes the data exactly.
        await sim.simulator.setFaults([])
        let again = try Programs.Child(try Programs.path("binance-extractor"), args)
        #expect(await again.wait() == 0, "stderr: \(again.errors)")
        let complete = try await KlineStore(pool: db.pool).klines(table: table, symbol: try Symbol(validating: "ETHUSDT"))
        #expect(complete.count == expected.count)
        #expect(zip(complete, expected).allSatisfy { $0.matches($1) })
    }

    @Test("every executable prints the one project version with --version", arguments: ["binance-extractor", "binance-sim", "otlp-receiver", "binance-bench"])
    func version(program: String) async throws {
        let child = try Programs.Child(try Programs.path(program), ["--version"])
        #expect(await child.wait() == 0)
        #expect(child.output.trimmingCharacters(in: .whitespacesAndNewlines) == BuildInfo.version)
    }

    @Test("bad input in a real process exits 2 with the message on stderr", arguments: [
        (["klines", "--timeframes", "2m", "--symbols", "BTCUSDT", "--dry-run"], "unknown timeframe '2m'"),
        (["klines", "--timeframes", "1m", "--symbols", "BTC;USDT", "--dry-run"], "invalid symbol 'BTC;USDT'"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--mysql-uri", "mysql://user:pw@host"], "no database name"),
    ])
    func badInputExitStatus(args: [String], message: String) async throws {
        let child = try Programs.Child(try Programs.path("binance-extractor"), args)
        #expect(await child.wait() == 2)
        #expect(child.errors.contains(message), "stderr: \(child.errors)")
        #expect(!child.errors.contains(":pw@"))
    }
}
