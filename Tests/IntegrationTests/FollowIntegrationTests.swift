import BinanceAPI
import BinanceSimulator
import BinanceStreams
import Clocks
import ExtractorCLI
import Foundation
import HTTPTransport
import Logging
import Pipeline
import StoreKit
import Telemetry
import TestSupport
import Testing

/// `follow` end to end: binance-sim's streams over a real WebSocket, its REST, and a real database, on a clock the test
/// moves: through a connection whose finals never come and which then drops, one whose finals lie, and a clean one,
/// the table ends exactly as REST has it, with no hole, no duplicate and no open candle.
/// One suite, serialized: these tests drive sockets hard, and run one at a time beside the other suites.
@Suite("live follow against binance-sim and a real database", .serialized, .timeLimit(.minutes(2)))
struct FollowIntegrationTests {
    static let now: Int64 = 1_709_294_400_000 + 30_000  // 2024-03-01T12:00:30Z

    /// Moves the market's clock a step at a time: each step once binance-sim's stream and the hub's watcher wait on the
    /// clock (the simulator has sent what the moment brings; bounded, as during a reconnect nothing streams), then
    /// after a short pause for the sockets, once the follower has taken what came. The checks never depend on the pace:
    /// they compare the table with REST.
    static func drive(_ clock: ManualClock, until end: Int64, step: Int64, inbox: FollowInbox) async throws {
        while clock.now() < end {
            try Task.checkCancellation()  // the time limit: a follower that stopped taking (a database away) never idles
            for _ in 0..<50 where clock.sleeperCount < 2 { try await Task.sleep(nanoseconds: 200_000) }
            clock.advance(by: step)
            try await Task.sleep(nanoseconds: 500_000)
            await inbox.idle()
        }
    }

    /// REST's candles from the catch-up's first through the last closed minute, and the table's, once they match: the clock
    /// moves on a step at a time (bounded) until the last candles are confirmed.
    static func settle(_ clock: ManualClock, sim: SimulatorFixture, db: TestStore, table: KlineTable, step: Int64, tries: Int) async throws
        -> (stored: [StoredKline], expected: [Kline]) {
        let lastClosed = KlineInterval.m1.openTime(containing: clock.now()) - 60_000
        let first = KlineInterval.m1.openTime(containing: Self.now - 3_600_000)
        let expected = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .m1, from: first, through: lastClosed + 59_999)
        var stored: [StoredKline] = []
        for _ in 0..<tries {
            stored = try await db.klines(table: table, symbol: "BTCUSDT")
            if stored.count == expected.count, zip(stored, expected).allSatisfy({ $0.matches($1) }) { break }
            clock.advance(by: step)
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        return (stored, expected)
    }

    @Test("lost finals come from REST, a drop is caught up, lies are corrected: the table is REST's, candle for candle", arguments: StoreKind.allCases)
    func followsThroughFaults(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setStreamFaults([
            .init(.finalNever, connections: 0..<1), .init(.dropAfter(messages: 300), connections: 0..<1),
            .init(.finalLies, connections: 1..<2), .init(.dropAfter(messages: 400), connections: 1..<2),
        ])
        var settings = KlineFollower.Settings()
        // Generous: the test's clock runs ahead of the sockets; a final is late only when truly lost.
        settings.missingAfter = 30_000
        let rig = try await FollowRig(market: .futures, streamPath: "/market", sim: sim, db: db, clock: clock, settings: settings,
                                      hub: .standard(market: .futures, intervals: [.m1]))
        defer { rig.run.cancel(); rig.http.shutdown() }
        let (inbox, hub, table, run) = (rig.inbox, rig.hub, rig.table, rig.run)
        // Six minutes of the market, a quarter second at a time; then on, half a minute at a time (six more minutes at
        // most), until both faulty connections have dropped: how many messages a connection gets in a minute of the
        // test's clock depends on the sockets' real pace, so the second drop may come later on a busy machine.
        try await Self.drive(clock, until: Self.now + 6 * 60_000, step: 250, inbox: inbox)
        for _ in 0..<12 where hub.statistics.connections < 3 {
            try await Self.drive(clock, until: clock.now() + 30_000, step: 250, inbox: inbox)
        }
        let (stored, expected) = try await Self.settle(clock, sim: sim, db: db, table: table, step: 250, tries: 400)
        run.cancel()
        let reports = await run.value
        #expect(stored.map(\.openTime) == expected.map(\.openTime), "no hole, no duplicate, no open candle")
        let differing = zip(stored, expected).filter { !$0.matches($1) }.map(\.0.openTime)
        #expect(differing.isEmpty, "stored candles differ from REST's: \(differing.map(UTCCalendar.iso8601))")
        let outcome = try #require(reports.first?.outcome)
        #expect(outcome.missedFinals >= 1 && outcome.fromStream >= 1 && outcome.corrected >= 1 && outcome.confirmed >= 1, "\(outcome)")
        #expect(hub.statistics.connections >= 3, "\(hub.statistics)")
        #expect(await sim.simulator.statistics.streamConnections >= 3)
    }

    @Test("the connection is replaced before the server's cut, and on spot's serverShutdown: the new one streams first, nothing is missed, nothing reconnects")
    func renewalBeforeTheCut() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(.mariadb)
        defer { Task { await sim.stop(); await db.drop() } }
        // The 24-hour lifetime compressed to 3 minutes; the follower replaces a connection after 2. Spot's second connection
        // announces serverShutdown after a while.
        var rules = StreamRules.of(.spot)
        rules.lifetime = 180_000
        await sim.simulator.setStreamRules(rules, for: .spot)
        await sim.simulator.setStreamFaults([.init(.serverShutdownAfter(messages: 40), connections: 1..<2)])
        var hubSettings = StreamHub.Settings.standard(market: .spot, intervals: [.m1])
        hubSettings.renewAfter = 120_000
        var settings = KlineFollower.Settings()
        settings.missingAfter = 30_000
        let rig = try await FollowRig(market: .spot, streamPath: "", sim: sim, db: db, clock: clock, settings: settings, hub: hubSettings)
        defer { rig.run.cancel(); rig.http.shutdown() }
        let (inbox, hub, table, run) = (rig.inbox, rig.hub, rig.table, rig.run)
        try await Self.drive(clock, until: Self.now + 6 * 60_000, step: 500, inbox: inbox)
        let (stored, expected) = try await Self.settle(clock, sim: sim, db: db, table: table, step: 500, tries: 200)
        run.cancel()
        let reports = await run.value
        #expect(stored.map(\.openTime) == expected.map(\.openTime), "no hole, no duplicate")
        #expect(zip(stored, expected).allSatisfy { $0.matches($1) })
        let statistics = hub.statistics
        #expect(statistics.connections >= 3 && statistics.reconnects == 0, "replaced, never lost: \(statistics)")
        let outcome = try #require(reports.first?.outcome)
        #expect(outcome.fromStream >= 5 && outcome.missedFinals == 0, "\(outcome)")
    }

    @Test("a refused upgrade is tried again after a backoff; a connection gone silent (open, no message) is replaced; the table is REST's")
    func refusedAndSilent() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(.postgresql)
        defer { Task { await sim.stop(); await db.drop() } }
        // The first two upgrades answered 503 (maintenance), the next connection falls silent after 200 messages.
        await sim.simulator.setStreamFaults([
            .init(.refuse(status: 503), connections: 0..<2), .init(.silentAfter(messages: 200), connections: 2..<3),
        ])
        var settings = KlineFollower.Settings()
        settings.missingAfter = 30_000
        let rig = try await FollowRig(market: .futures, streamPath: "/market", sim: sim, db: db, clock: clock, settings: settings,
                                      hub: .standard(market: .futures, intervals: [.m1]))
        defer { rig.run.cancel(); rig.http.shutdown() }
        let (inbox, hub, table, run) = (rig.inbox, rig.hub, rig.table, rig.run)
        try await Self.drive(clock, until: Self.now + 5 * 60_000, step: 250, inbox: inbox)
        let (stored, expected) = try await Self.settle(clock, sim: sim, db: db, table: table, step: 250, tries: 400)
        run.cancel()
        _ = await run.value
        #expect(stored.map(\.openTime) == expected.map(\.openTime), "no hole, no duplicate")
        #expect(zip(stored, expected).allSatisfy { $0.matches($1) })
        let statistics = hub.statistics
        // Two refused, one silent and replaced, one clean: four attempts at least, two connections made, one lost to silence.
        #expect(statistics.attempts >= 4 && statistics.connections >= 2 && statistics.reconnects >= 1, "\(statistics)")
        #expect(await sim.simulator.statistics.streamConnections >= 2)
    }

    @Test("--trades: every aggregate trade id exactly once, through ids the stream skipped (REST fromId), repeats and a drop",
          arguments: StoreKind.allCases)
    func tradesExactlyOnce(store kind: StoreKind) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestStore.make(kind)
        defer { Task { await sim.stop(); await db.drop() } }
        await sim.simulator.setStreamFaults([
            .init(.tradesSkipped(every: 4), connections: 0..<1), .init(.dropAfter(messages: 12), connections: 0..<1),
            .init(.tradesTwice, connections: 1..<2),
        ])
        let symbol = try Symbol(validating: "BTCUSDT")
        let table = TradeTable(market: .futures)
        let store = try await db.tradeWriter(creating: table)
        let http = CurlHTTPClient(options: .init(workers: 1))
        defer { http.shutdown() }
        let client = BinanceClient(market: .futures, baseURL: sim.baseURL, http: http,
                                   limiter: RateLimiter(market: .futures, rule: Market.futures.defaultWeightLimit, clock: clock), clock: clock)
        let logger = Logger(label: "follow-test")
        let stream = MarketStream.aggTrade(symbol)
        let inbox = FollowInbox()
        let base = sim.baseURL.replacingOccurrences(of: "http://", with: "ws://") + "/market"
        let hub = StreamHub(url: MarketStream.url(base: base, streams: [stream]), inboxes: [stream.name: inbox], connector: WebSocketConnector(logger: logger),
                            attempts: ConnectionAttempts(), clock: clock, settings: StreamHub.Settings(silenceAfter: 60_000), logger: logger)
        let start = Self.now - 3_600_000
        let follower = TradeFollower(unit: ExtractionUnit(market: .futures, symbol: symbol, dataset: .aggTrades), inbox: inbox, source: client,
                                     store: store, clock: clock, logger: logger) {
            TradeExtractor(market: .futures, symbol: symbol, client: client, store: store, clock: clock, startTime: start, batchSize: 500,
                           maxPages: 1_000, dryRun: false, logger: logger)
        }
        let run = Task { await Supervisor(maxWorkers: 1, unitRetries: 0, clock: clock, logger: logger).follow([follower], fedBy: [hub]) }
        defer { run.cancel() }
        // Six minutes of the market (a trade every 10 s), a quarter second at a time.
        try await Self.drive(clock, until: Self.now + 6 * 60_000, step: 250, inbox: inbox)
        run.cancel()
        let reports = await run.value
        let ids = try await db.tradeIds(table, symbol: "BTCUSDT").map(\.0)
        let expected = await sim.simulator.expectedAggTrades(symbol: "BTCUSDT", fromId: ids.first ?? 0, throughTime: clock.now() - 10_000)
        #expect(!ids.isEmpty && Array(ids.prefix(expected.count)) == expected.map(\.id), "every id once, none missing: \(ids.count) stored, \(expected.count) expected")
        #expect(ids.count <= expected.count + 1, "no trade twice")
        let outcome = try #require(reports.first?.outcome)
        #expect(outcome.fromStream >= 10 && outcome.missedFinals >= 1, "\(outcome)")
        #expect(hub.statistics.connections >= 2, "\(hub.statistics)")
    }

    // MARK: The program, as a user runs it: the real binary, the real clock, spot's one-second candles.
    @Test("writes each second's candle as it closes, and SIGTERM commits and exits 0 within 2 s, saying what came from the stream")
    func sigtermExitsZero() async throws {
        let sim = try await SimulatorFixture.start()
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let ws = sim.baseURL.replacingOccurrences(of: "http://", with: "ws://")
        let child = try Programs.Child(try Programs.path("binance-extractor"), [
            "follow", "--market", "spot", "--symbols", "BTCUSDT", "--timeframes", "1s", "--ws-url", ws, "--api-url", sim.baseURL,
            "--mysql-uri", db.uriText, "--lookback-hours", "1", "--source", "rest", "--summary", "json",
        ], environment: ["OTEL_SDK_DISABLED": "true"])
        // Polls the table (bounded): the catch-up's hour, then candles from the stream.
        let started = Int64(Date().timeIntervalSince1970 * 1000)
        let table = KlineTable(market: .spot, interval: .s1).name
        var newest: Int64 = 0
        for _ in 0..<300 where newest < started + 2_000 {
            // The table is created once the program has connected to the database: until then, nothing.
            let answer = try? await db.query("SELECT COALESCE(MAX(CAST(UNIX_TIMESTAMP(open_time) * 1000 AS SIGNED)), 0) FROM \(table)")
            newest = Int64(answer?.first?.first.flatMap { $0 } ?? "0") ?? 0
            if newest < started + 2_000 { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(newest >= started + 2_000, "no candle: \(child.errors.suffix(2000))")
        // Then two more seconds: candles closed after the catch-up, which only the stream (or a lost final's REST
        // request) brings.
        let caughtUp = newest
        for _ in 0..<300 where newest < caughtUp + 2_000 {
            let answer = try? await db.query("SELECT COALESCE(MAX(CAST(UNIX_TIMESTAMP(open_time) * 1000 AS SIGNED)), 0) FROM \(table)")
            newest = Int64(answer?.first?.first.flatMap { $0 } ?? "0") ?? 0
            if newest < caughtUp + 2_000 { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        let signalled = Date()
        child.signal(SIGTERM)
        let status = await child.wait()
        #expect(status == 0, "\(child.errors.suffix(2000))")
        #expect(Date().timeIntervalSince(signalled) < 2, "stopped in \(Date().timeIntervalSince(signalled)) s")
        #expect(child.output.contains("\"from_stream\":") && !child.output.contains("\"from_stream\":0,"), "\(child.output)")
        // No hole: one row a second from the first to the newest.
        let rows = try await db.query("SELECT COUNT(*), CAST(UNIX_TIMESTAMP(MIN(open_time)) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(MAX(open_time)) * 1000 AS SIGNED) FROM \(table)")
        let (count, first, last) = (Int64(rows[0][0]!)!, Int64(rows[0][1]!)!, Int64(rows[0][2]!)!)
        #expect(count == (last - first) / 1_000 + 1, "\(count) rows from \(first) to \(last)")
    }

    @Test("bad input is exit 2 before anything connects", arguments: [
        ["--ws-url", "http://127.0.0.1:1"], ["--ws-url", "ws://"], ["--ws-url", "http://user:secretpw@127.0.0.1:1"], ["--ws-url", "ws://host/stream?streams=x"], ["--dry-run"],
        ["--timeframes", "1s", "--market", "futures"], ["--timeframes", "7m"], ["--lookback-hours", "0"],
    ])
    func badInput(_ extra: [String]) async throws {
        let out = LineSink(), err = LineSink()
        var args = ["follow", "--symbols", "BTCUSDT", "--mysql-uri", "mysql://u:p@127.0.0.1:1/x"]
        if !extra.contains("--timeframes") { args += ["--timeframes", "1m"] }
        let status = await ExtractorCLI.run(arguments: args + extra, environment: ["OTEL_SDK_DISABLED": "true"], context: RunContext(output: out, errors: err))
        #expect(status == 2, "\(extra): \(err.text)")
        #expect(!err.text.contains("secretpw") && !out.text.contains("secretpw"), "a URL's password shown: \(err.text)")
    }
}

/// `follow`'s parts for BTCUSDT 1m on `market`, against binance-sim and a test store: the real WebSocket connector, a
/// hub, a follower that catches up an hour, and the supervisor running them (`run`, cancelled by the test).
struct FollowRig {
    let inbox = FollowInbox()
    let hub: StreamHub
    let table: KlineTable
    let http = CurlHTTPClient(options: .init(workers: 1))
    let run: Task<[UnitReport], Never>

    init(market: Market, streamPath: String, sim: SimulatorFixture, db: TestStore, clock: ManualClock, settings given: KlineFollower.Settings,
         hub hubSettings: StreamHub.Settings) async throws {
        let symbol = try Symbol(validating: "BTCUSDT")
        let unit = ExtractionUnit(market: market, symbol: symbol, interval: .m1)
        table = unit.table!
        let store = try await db.klineWriter(creating: [table])
        let client = BinanceClient(market: market, baseURL: sim.baseURL, http: http,
                                   limiter: RateLimiter(market: market, rule: market.defaultWeightLimit, clock: clock), clock: clock)
        let logger = Logger(label: "follow-test")
        let stream = MarketStream.kline(symbol, .m1)
        let base = sim.baseURL.replacingOccurrences(of: "http://", with: "ws://") + streamPath
        let hub = StreamHub(url: MarketStream.url(base: base, streams: [stream]), inboxes: [stream.name: inbox], connector: WebSocketConnector(logger: logger),
                            attempts: ConnectionAttempts(), clock: clock, settings: hubSettings, logger: logger)
        self.hub = hub
        var settings = given
        settings.catchUp = SymbolExtractor.Settings(planner: RangePlanner(lookbackMilliseconds: 3_600_000), batchSize: 500)
        let follower = KlineFollower(unit: unit, inbox: inbox, source: client, writer: FollowWriter(store: store), clock: clock, settings: settings, logger: logger)
        let supervisor = Supervisor(maxWorkers: 1, unitRetries: 0, clock: clock, logger: logger)
        run = Task { await supervisor.follow([follower], fedBy: [hub]) }
    }
}
