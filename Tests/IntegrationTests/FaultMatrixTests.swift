import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import OTLPReceiver
import Telemetry
import MariaDBStore
import StoreKit
import TestSupport
import Testing

/// Every fault the extractor must survive, driven through binance-sim's fault switches and real MariaDB servers;
/// each case checks the final table contents exactly, the exit status and the message.
@Suite("Fault matrix", .serialized, .timeLimit(.minutes(3)))
struct FaultMatrixTests {
    typealias E2E = KlinesEndToEndTests
    static let day: Int64 = 86_400_000


    static func stored(_ uri: DatabaseURI, table: KlineTable, symbol: String) async throws -> [StoredKline] {
        let pool = ConnectionPool(uri: uri, size: 1)
        defer { pool.shutdown() }
        return try await KlineStore(pool: pool).klines(table: table, symbol: try Symbol(validating: symbol))
    }

    static func expectExact(_ stored: [StoredKline], _ expected: [Kline], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(stored.count == expected.count, "\(stored.count) stored, \(expected.count) served", sourceLocation: sourceLocation)
        #expect(zip(stored, expected).allSatisfy { $0.matches($1) }, "stored values differ from served ones", sourceLocation: sourceLocation)
    }

    // MARK: Binance

    @Test("408, slow answers past the timeout and answers that never come are retried; the data ends exact", arguments: [
        FaultPlan(kind: .http408, every: 2, count: 2),
        FaultPlan(kind: .slow, every: 2, count: 1, slowMilliseconds: 2_500),
        FaultPlan(kind: .hang, every: 2, count: 1),
    ])
    func timeouts(plan: FaultPlan) async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [plan]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await E2E.extract(["--timeframes", "5m", "--symbols", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-08",
                                     "--http-timeout", "1"], sim: sim, db: db, clock: SystemClock())
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.summary["retries"] as? Int ?? 0 >= 1)
        let start = UTCCalendar.parse("2024-01-01")!
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m5), symbol: "BTCUSDT",
                                  from: start, through: start + 7 * Self.day - 1)
    }

    @Test("a 429 holds every task for Retry-After: no ban, nothing lost")
    func tooManyRequests() async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .http429, every: 3, count: 1, retryAfterSeconds: 1)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await E2E.extract(["--timeframes", "1m", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT", "--max-workers", "3",
                                     "--start", "2024-01-01", "--end", "2024-01-03"], sim: sim, db: db, clock: SystemClock())
        #expect(run.status == 0, "\(run.errors)")
        let stats = await sim.simulator.statistics
        #expect(stats.tooManyRequests == 1)
        #expect(stats.bans == 0)
        #expect(run.errors.contains("rate limited by Binance; holding all requests"))
        // The summary's duration is the whole run, the second held by Retry-After included.
        #expect(run.summary["duration_ms"] as? Int ?? 0 >= 900, "\(run.summary)")
        // After the 429, the next klines request came only once Retry-After had passed.
        let times = stats.klinesRequestTimes
        if let i = times.indices.dropFirst(2).first, i + 1 < times.count {
            let after = times.drop(while: { $0 <= times[2] }).dropFirst(2)
            #expect(after.allSatisfy { $0 >= times[2] + 900 })
        }
        for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
            try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m1), symbol: symbol,
                                      from: UTCCalendar.parse("2024-01-01")!, through: UTCCalendar.parse("2024-01-03")! - 1)
        }
    }

    @Test("a short ban (418) is waited out without another request, then the run completes")
    func shortBan() async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .http418, every: 2, count: 1, retryAfterSeconds: 1)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await E2E.extract(["--timeframes", "1m", "--symbols", "BTCUSDT,ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-03",
                                     "--max-ban-wait", "5", "--max-workers", "1"], sim: sim, db: db, clock: SystemClock())
        #expect(run.status == 0, "\(run.errors)")
        #expect(await sim.simulator.statistics.bans == 1, "a request was sent during the ban")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m1), symbol: "ETHUSDT",
                                  from: UTCCalendar.parse("2024-01-01")!, through: UTCCalendar.parse("2024-01-03")! - 1)
    }

    @Test("a ban longer than --max-ban-wait stops every request at once and ends the run with exit 1 and its end time")
    func longBan() async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .http418, every: 3, count: 1, retryAfterSeconds: 600)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let started = Date()
        let run = await E2E.extract(["--timeframes", "1m", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT", "--max-workers", "2",
                                     "--start", "2024-01-01", "--end", "2024-01-05"], sim: sim, db: db, clock: SystemClock())
        #expect(run.status == 1)
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(run.output.contains("banned this IP (HTTP 418) until 20"))
        let stats = await sim.simulator.statistics
        // The 418 itself, plus at most the other worker's request that was already on its way: none sent after.
        #expect(stats.bans <= 2, "requests were sent after the ban: \(stats.byStatus)")
        // What was fetched before the ban is stored, exactly, without holes.
        let stored = try await Self.stored(db.uri, table: KlineTable(market: .futures, interval: .m1), symbol: "BTCUSDT")
        let expected = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .m1, from: UTCCalendar.parse("2024-01-01")!,
                                                          through: UTCCalendar.parse("2024-01-05")! - 1)
        #expect(zip(stored, expected).allSatisfy { $0.matches($1) })
    }

    @Test("a request issue (-1100) fails its unit without a retry")
    func requestIssue() async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .badParameter, every: 1, count: 1)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT", "--max-workers", "1"], sim: sim, db: db,
                                    clock: ManualClock(now: E2E.now))
        #expect(run.status == 1)
        #expect(run.output.contains("code -1100"))
        #expect(await sim.simulator.statistics.byStatus["400"] == 1)
    }

    @Test("an exchange that keeps failing opens the circuit breaker: a few probes instead of every unit's retries, then exit 1")
    func circuitBreakerStops() async throws {
        let clock = ManualClock(now: E2E.now)
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .http503)]
        let sim = try await SimulatorFixture.start(configuration: configuration, clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "PEPEUSDT"]
        let run = try await clock.drive(step: 500) {
            await E2E.extract(["--timeframes", "1h", "--symbols", symbols.joined(separator: ","), "--max-workers", "3",
                               "--max-outage-wait", "20", "--unit-retries", "1"], sim: sim, db: db, clock: clock)
        }
        #expect(run.status == 1)
        #expect(run.output.contains("circuit breaker stayed open"))
        let stats = await sim.simulator.statistics
        // Without the breaker: 6 units x 2 tries x 5 attempts = 60 requests.
        #expect(stats.klinesRequests < 20, "\(stats.klinesRequests) requests reached a failing exchange")
    }

    @Test("the breaker closes after a successful probe, and the run completes exactly")
    func circuitBreakerRecovers() async throws {
        let clock = ManualClock(now: E2E.now)
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .http503, every: 1, count: 7)]
        let sim = try await SimulatorFixture.start(configuration: configuration, clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        // Manual time races ahead of real HTTP here: give the breaker a day before it may give up.
        let run = try await clock.drive(step: 200) {
            await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT", "--max-workers", "3",
                               "--request-attempts", "10", "--max-outage-wait", "86400"], sim: sim, db: db, clock: clock)
        }
        #expect(run.status == 0, "\(run.errors)")
        // The ticking clock may run past the 12:00 candle's close during the run (the skew the next run's overlap
        // repairs): compare the candles that were closed when the run started.
        let closedAtStart = KlineInterval.h1.openTime(containing: E2E.now) - 1
        for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
            let expected = await sim.simulator.expectedKlines(symbol: symbol, interval: .h1, from: KlineInterval.h1.openTime(containing: E2E.now - Self.day),
                                                              through: closedAtStart)
            let stored = try await Self.stored(db.uri, table: KlineTable(market: .futures, interval: .h1), symbol: symbol).filter { $0.openTime <= closedAtStart }
            Self.expectExact(stored, expected)
        }
    }

    // MARK: Database

    @Test("the database restarting mid-run is survived: reconnect, write the batch again, nothing lost or doubled", arguments: StoreKind.allCases)
    func databaseRestart(store kind: StoreKind) async throws {
        let server = try DedicatedStore(kind)
        defer { server.destroy() }
        let url = try await server.database("market")
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .slow, every: 1, slowMilliseconds: 150)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        defer { Task { await sim.stop() } }
        let run = Task {
            await E2E.extract(["--timeframes", "1m", "--symbols", "ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-08",
                               "--batch-size", "400", "--max-workers", "1", "--database-url", url], api: sim.baseURL, uri: nil,
                              clock: SystemClock())
        }
        let table = KlineTable(market: .futures, interval: .m1)
        for _ in 0..<200 {
            if try await server.count(url, table: table.name) > 0 { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        try server.stop()
        try await Task.sleep(nanoseconds: 800_000_000)
        try server.start()
        let result = await run.value
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.errors.contains("database connection lost; reconnecting"))
        let expected = await sim.simulator.expectedKlines(symbol: "ETHUSDT", interval: .m1, from: UTCCalendar.parse("2024-01-01")!,
                                                          through: UTCCalendar.parse("2024-01-08")! - 1)
        Self.expectExact(try await server.klines(url, table: table, symbol: "ETHUSDT"), expected)
    }

    static func count(_ uri: DatabaseURI, _ table: KlineTable) async throws -> Int {
        let pool = ConnectionPool(uri: uri, size: 1)
        defer { pool.shutdown() }
        do {
            let rows = try await pool.withConnection { try $0.query("SELECT COUNT(*) FROM `\(table.name)`") }
            return Int(rows[0][0] ?? "0") ?? 0
        } catch let error as DatabaseError where error.code == 1146 {
            return 0  // table not created yet
        }
    }

    @Test("a statement kept waiting by another session's lock is run again until the lock is gone (1205, 55P03)", arguments: StoreKind.allCases)
    func lockWaitTimeout(store kind: StoreKind) async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        let table = KlineTable(market: .futures, interval: .h1)
        let out = LineSink(), err = LineSink()
        #expect(await ExtractorCLI.run(arguments: ["migrate", "--timeframes", "1h", "--database-url", db.urlText], environment: ["OTEL_SDK_DISABLED": "true"],
                                       context: RunContext(output: out, errors: err)) == 0, "\(err.text)")
        // Another session holds the table against writes for a while.
        let lock = try await db.holdWriteLock(on: table.name)
        // Held for three lock timeouts (1 s each): the run meets it at least once even when a loaded machine starts it late,
        // and gets past it well within its five attempts.
        let release = Task {
            try await Task.sleep(nanoseconds: 3_000_000_000)
            try await lock.release()
        }
        let run = await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT", "--db-lock-wait-timeout", "1"], sim: sim, store: db, clock: clock)
        try await release.value
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.errors.contains("database lock conflict; running the statement again"))
        #expect(run.errors.contains(kind == .mariadb ? "1205" : "55P03"))
        try await E2E.expectExact(db, sim, table: table, symbol: "BTCUSDT",
                                  from: KlineInterval.h1.openTime(containing: E2E.now - Self.day), through: clock.now())
    }

    // MARK: Process

    @Test("SIGKILL at any moment leaves whole batches only, and the next run completes the data exactly")
    func sigkill() async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .slow, every: 1, slowMilliseconds: 150)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let args = ["klines", "--timeframes", "1m", "--symbols", "ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-08",
                    "--api-url", sim.baseURL, "--mysql-uri", db.uriText, "--batch-size", "300", "--max-workers", "1"]
        let child = try Programs.Child(try Programs.path("binance-extractor"), args)
        for _ in 0..<200 where try await db.count("klines_m1") < 600 { try await Task.sleep(nanoseconds: 30_000_000) }
        child.signal(SIGKILL)
        _ = await child.wait()
        let table = KlineTable(market: .futures, interval: .m1)
        let stored = try await Self.stored(db.uri, table: table, symbol: "ETHUSDT")
        let expected = await sim.simulator.expectedKlines(symbol: "ETHUSDT", interval: .m1, from: UTCCalendar.parse("2024-01-01")!,
                                                          through: UTCCalendar.parse("2024-01-08")! - 1)
        #expect(stored.count > 0 && stored.count < expected.count)
        #expect(stored.count % 300 == 0, "\(stored.count) rows: not whole batches of 300")
        #expect(zip(stored, expected).allSatisfy { $0.matches($1) })

        await sim.simulator.setFaults([])
        let again = try Programs.Child(try Programs.path("binance-extractor"), args)
        #expect(await again.wait() == 0, "\(again.errors)")
        Self.expectExact(try await Self.stored(db.uri, table: table, symbol: "ETHUSDT"), expected)
    }

    @Test("two runs of the same job at once do not corrupt the data")
    func overlappingRuns() async throws {
        let sim = try await SimulatorFixture.start()
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let args = ["klines", "--timeframes", "1m", "--symbols", "BTCUSDT,ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-04",
                    "--api-url", sim.baseURL, "--mysql-uri", db.uriText, "--batch-size", "500"]
        let a = try Programs.Child(try Programs.path("binance-extractor"), args)
        let b = try Programs.Child(try Programs.path("binance-extractor"), args)
        let (sa, sb) = (await a.wait(), await b.wait())
        #expect(sa == 0 && sb == 0, "\(a.errors) \(b.errors)")
        for symbol in ["BTCUSDT", "ETHUSDT"] {
            let expected = await sim.simulator.expectedKlines(symbol: symbol, interval: .m1, from: UTCCalendar.parse("2024-01-01")!,
                                                              through: UTCCalendar.parse("2024-01-04")! - 1)
            Self.expectExact(try await Self.stored(db.uri, table: KlineTable(market: .futures, interval: .m1), symbol: symbol), expected)
        }
    }

    @Test("a job started while another spends the IP's whole budget gets no 429: room is kept for its first request, and it starts from the count in that answer")
    func secondJobOnTheSameIP() async throws {
        var configuration = BinanceSimulator.Configuration()
        let (limit, windowMilliseconds): (Int, Int64) = (40, 4_000)
        configuration.setWeightLimit(limit, windowSeconds: Double(windowMilliseconds) / 1000)  // a published rule unlike the default
        let sim = try await SimulatorFixture.start(configuration: configuration)
        defer { Task { await sim.stop() } }
        let common = ["--timeframes", "1m", "--api-url", sim.baseURL, "--dry-run", "--summary", "json", "--max-workers", "4"]
        let first = try Programs.Child(try Programs.path("binance-extractor"),
                                       ["klines", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT", "--start", "2024-01-01", "--end", "2024-01-06"] + common)
        // The second job starts when the first has spent nearly a whole window (all but 4 weight) with time left in it:
        // its exchangeInfo (1) and first four pages (2 each) would pass the limit unless its budget starts from the
        // count Binance sent in its first answer. (The first job is held by weight, not by its speed: 40 per 4 s.)
        var started = false
        for _ in 0..<1_500 where !started {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let window = now - now % windowMilliseconds
            let used = await sim.simulator.statistics.weightByWindow["\(window)"] ?? 0
            if used >= limit - 4 && now - window < windowMilliseconds - 1_500 {
                started = true
            } else {
                try await Task.sleep(nanoseconds: 5_000_000)
            }
        }
        let windows = await sim.simulator.statistics.weightByWindow
        try #require(started, "the first job never spent a window: \(windows)")
        let second = try Programs.Child(try Programs.path("binance-extractor"),
                                        ["klines", "--symbols", "XRPUSDT,BNBUSDT", "--start", "2024-02-01", "--end", "2024-02-04"] + common)
        let (a, b) = (await first.wait(), await second.wait())
        #expect(a == 0 && b == 0, "\(first.errors.suffix(600)) \(second.errors.suffix(600))")
        let stats = await sim.simulator.statistics
        #expect(stats.weightUsed > 3 * limit, "the runs must span several windows to test anything: \(stats.weightByWindow)")
        let told = (first.errors + second.errors).split(separator: "\n").filter { $0.contains("429") }
        #expect(stats.tooManyRequests == 0 && stats.bans == 0, "\(stats.byStatus) \(stats.weightByWindow) \(told)")
    }

    @Test("SIGTERM with a database that stopped answering still ends the process within --shutdown-timeout")
    func shutdownDeadline() async throws {
        let server = try DedicatedMariaDB()
        defer { server.destroy() }
        let uri = try await server.database("market")
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .slow, every: 1, slowMilliseconds: 200)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        defer { Task { await sim.stop() } }
        let child = try Programs.Child(try Programs.path("binance-extractor"), [
            "klines", "--timeframes", "1m", "--symbols", "ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-08",
            "--api-url", sim.baseURL, "--mysql-uri", TestDatabase.text(of: uri), "--batch-size", "700", "--max-workers", "1",
            "--shutdown-timeout", "2",
        ])
        for _ in 0..<200 where try await Self.count(uri, KlineTable(market: .futures, interval: .m1)) == 0 {
            try await Task.sleep(nanoseconds: 30_000_000)
        }
        try server.freeze(true)
        let signalled = Date()
        child.signal(SIGTERM)
        let status = await child.wait()
        try server.freeze(false)
        #expect(status == 1)
        #expect(Date().timeIntervalSince(signalled) < 6)
        #expect(child.errors.contains("shutdown did not finish within --shutdown-timeout"))
    }

    @Test("a second SIGINT during a shutdown held by a frozen database ends the process at once, with status 1")
    func secondSignal() async throws {
        let server = try DedicatedMariaDB()
        defer { server.destroy() }
        let uri = try await server.database("market")
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = [FaultPlan(kind: .slow, every: 1, slowMilliseconds: 200)]
        let sim = try await SimulatorFixture.start(configuration: configuration)
        defer { Task { await sim.stop() } }
        let child = try Programs.Child(try Programs.path("binance-extractor"), [
            "klines", "--timeframes", "1m", "--symbols", "ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-08",
            "--api-url", sim.baseURL, "--mysql-uri", TestDatabase.text(of: uri), "--batch-size", "700", "--max-workers", "1",
            "--shutdown-timeout", "60",
        ])
        for _ in 0..<200 where try await Self.count(uri, KlineTable(market: .futures, interval: .m1)) == 0 {
            try await Task.sleep(nanoseconds: 30_000_000)
        }
        try server.freeze(true)
        child.signal(SIGINT)
        // The first signal starts the graceful shutdown, which waits for the frozen database (up to 60 s)...
        for _ in 0..<100 where !child.errors.contains("shutdown requested") {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let second = Date()
        child.signal(SIGINT)
        let status = await child.wait()
        try server.freeze(false)
        // ... the second ends it at once.
        #expect(status == 1, "\(child.errors)")
        #expect(child.process.terminationReason == .exit)
        #expect(Date().timeIntervalSince(second) < 5)
        #expect(child.errors.contains("second SIGINT: exiting now"), "\(child.errors)")
    }

    @Test("SIGTERM while the database connect hangs ends the process at once with the interrupted status (1)")
    func signalDuringConnect() async throws {
        let silent = try LoopbackPort.silent()
        defer { close(silent.fd) }
        let child = try Programs.Child(try Programs.path("binance-extractor"), [
            "klines", "--timeframes", "1m", "--symbols", "ETHUSDT", "--api-url", "http://127.0.0.1:9",
            "--mysql-uri", "mysql://u:p@127.0.0.1:\(silent.port)/market",
        ])
        for _ in 0..<100 where !child.errors.contains("run starting") {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        try await Task.sleep(nanoseconds: 200_000_000)
        let signalled = Date()
        child.signal(SIGTERM)
        let status = await child.wait()
        #expect(status == 1, "\(child.errors)")
        #expect(child.process.terminationReason == .exit, "ended by the signal itself, not by the program")
        #expect(Date().timeIntervalSince(signalled) < 2)
        #expect(child.errors.contains("SIGTERM before any unit started"), "\(child.errors)")
    }

    // MARK: Secrets and TLS

    @Test("the database password never appears in logs, summaries, errors, traces, metrics or help", arguments: StoreKind.allCases)
    func passwordNeverShown(store kind: StoreKind) async throws {
        let sim = try await SimulatorFixture.start(clock: ManualClock(now: E2E.now))
        let db = try await TestStore.make(kind)
        let receiver = OTLPReceiver()
        try await receiver.start()
        let secret = "Zq9-secret-\(UInt16.random(in: 1000...9999))"
        let user = "bx\(UInt16.random(in: 1000...9999))"
        let login = try await db.createLogin(user, password: secret)
        defer { Task { await receiver.stop(); await sim.stop(); await login.remove(); await db.drop() } }
        let good = login.url(secret, nil)
        let runs = [
            await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT,NOPEUSDT", "--log-level", "trace", "--database-url", good], api: sim.baseURL,
                              uri: nil, clock: ManualClock(now: E2E.now)),
            await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT", "--database-url", login.url(secret + "x", nil)], api: sim.baseURL, uri: nil,
                              clock: ManualClock(now: E2E.now)),
            await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT", "--database-url", login.url(secret, 99999)], api: sim.baseURL, uri: nil,
                              clock: ManualClock(now: E2E.now)),
        ]
        let out = LineSink(), err = LineSink()
        let traced = await ExtractorCLI.run(arguments: ["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--api-url", sim.baseURL,
                                                        "--database-url", good],
                                            environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint],
                                            context: RunContext(clock: ManualClock(now: E2E.now), output: out, errors: err))
        let help = LineSink()
        _ = await ExtractorCLI.run(arguments: ["klines", "--help"], environment: ["DATABASE_URL": good], context: RunContext(output: help, errors: help))
        #expect(runs.map(\.status) == [1, 2, 2], "\(runs.map(\.errors))")
        #expect(traced == 0, "\(err.text)")
        for text in runs.flatMap({ [$0.output, $0.errors] }) + [out.text, err.text, help.text] {
            #expect(!text.contains(secret))
        }
        let exported = await receiver.requests
        #expect(exported.count >= 2)
        #expect(exported.allSatisfy { !String(decoding: $0.body, as: UTF8.self).contains(secret) })
        #expect(runs[0].errors.contains((kind == .mariadb ? "mysql://" : "postgresql://") + "\(user):***@"))
    }

    @Test("turning TLS verification off warns on every run")
    func insecureWarns() async throws {
        let sim = try await SimulatorFixture.start(clock: ManualClock(now: E2E.now))
        defer { Task { await sim.stop() } }
        let run = await E2E.extract(["--timeframes", "1h", "--symbols", "BTCUSDT", "--dry-run", "--insecure-skip-tls-verify"],
                                    api: sim.baseURL, uri: nil, clock: ManualClock(now: E2E.now))
        #expect(run.status == 0)
        #expect(run.errors.contains("TLS certificate verification is OFF"))
    }
}
