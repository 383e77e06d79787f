import BinanceAPI
import BinanceSimulator
import BinanceStreams
import Clocks
import Foundation
import HealthEndpoint
import HTTPTransport
import Logging
import Pipeline
import PostgresStore
import StoreKit
import TestSupport
import Testing

/// The followers' shared writer against real databases: what many units hand it at once commits in few statements,
/// every candle exactly once, and one unit's row the table refuses fails that unit only.
@Suite("follow: group commit, probes, connects, the simulator's stream flags")
struct FollowWriterTests {
    static let table = KlineTable(market: .futures, interval: .m1)
    static let from = UTCCalendar.parse("2024-03-01")!

    static func candles(_ symbol: String, count: Int64) async throws -> [Kline] {
        let sim = try await SimulatorFixture.start(clock: ManualClock(now: KlinesEndToEndTests.now))
        defer { Task { await sim.stop() } }
        return await sim.simulator.expectedKlines(symbol: symbol, interval: .m1, from: from, through: from + count * 60_000 - 1)
    }

    @Test("a minute's close: 40 units' finals at once commit in a few statements, each candle once, as a lone write would store it",
          arguments: StoreKind.allCases)
    func groupCommit(kind: StoreKind) async throws {
        let db = try await TestStore.make(kind)
        defer { Task { await db.drop() } }
        let store = try await db.klineWriter(creating: [Self.table])
        let writer = FollowWriter(store: store)
        let klines = try await Self.candles("BTCUSDT", count: 3)
        let symbols = try (0..<40).map { try Symbol(validating: "S\($0)USDT") }
        // Every unit hands its final at once, then its next one (and one unit the same candle again, as a repeat).
        try await withThrowingTaskGroup(of: Int.self) { group in
            for symbol in symbols {
                group.addTask {
                    var n = try await writer.write(table: Self.table, symbol: symbol, klines: [klines[0]])
                    n += try await writer.write(table: Self.table, symbol: symbol, klines: [klines[1], klines[2]])
                    return n
                }
            }
            group.addTask { try await writer.write(table: Self.table, symbol: symbols[0], klines: [klines[2]]) }
            var total = 0
            for try await n in group { total += n }
            #expect(total == 40 * 3 + 1)
        }
        #expect(try await db.count(Self.table.name) == 40 * 3)
        let statements = await writer.statements
        #expect(statements < 40, "group commit: \(statements) statements for 81 writes")
        for symbol in symbols.prefix(3) {
            let stored = try await db.klines(table: Self.table, symbol: symbol.name)
            #expect(stored.count == 3 && zip(stored, klines).allSatisfy { $0.matches($1) })
        }
    }

    @Test("a row the table refuses fails its own unit only; the others' candles of the same moment are committed",
          arguments: StoreKind.allCases)
    func badRowIsolated(kind: StoreKind) async throws {
        let db = try await TestStore.make(kind)
        defer { Task { await db.drop() } }
        let store = try await db.klineWriter(creating: [Self.table])
        let writer = FollowWriter(store: store)
        let klines = try await Self.candles("BTCUSDT", count: 1)
        var refused = klines[0]
        refused.open = DecimalString(unchecked: "1" + String(repeating: "0", count: 30))  // more digits than the column holds
        let (bad, good) = (refused, klines[0])
        let results = await withTaskGroup(of: (String, Bool).self) { group in
            for i in 0..<10 {
                group.addTask {
                    let symbol = try! Symbol(validating: "S\(i)USDT")
                    do {
                        _ = try await writer.write(table: Self.table, symbol: symbol, klines: [i == 3 ? bad : good])
                        return (symbol.name, true)
                    } catch { return (symbol.name, false) }
                }
            }
            var out: [String: Bool] = [:]
            for await (name, ok) in group { out[name] = ok }
            return out
        }
        #expect(results.filter { !$0.value }.map(\.key) == ["S3USDT"])
        #expect(try await db.count(Self.table.name) == 9)
    }

    @Test("PostgreSQL: a group's commit announces each symbol's candles on the table's channel")
    func groupNotifies() async throws {
        let db = try await TestPostgres.make()
        defer { Task { await db.drop() } }
        let store = PostgresKlineStore(pool: db.pool)
        try await store.create([Self.table])
        let listener = try PostgresConnection(uri: db.uri)
        try listener.listen(Self.table.name)
        let klines = try await Self.candles("BTCUSDT", count: 2)
        let groups = try ["BTCUSDT", "ETHUSDT"].map { KlineGroup(symbol: try Symbol(validating: $0), klines: klines) }
        #expect(try await store.write(table: Self.table, groups: groups) == 4)
        let heard = try await listener.notifications(awaiting: 2)
        let last = klines[1].openTime
        #expect(Set(heard.map(\.payload)) == [
            "{\"symbol\":\"BTCUSDT\",\"open_time\":\(last),\"rows\":2}", "{\"symbol\":\"ETHUSDT\",\"open_time\":\(last),\"rows\":2}",
        ])
    }

    @Test("/healthz answers 200; /readyz 503 until every unit streams and has caught up, then 200; a taken port is refused up front")
    func probes() async throws {
        let monitor = FollowMonitor(units: ["btcusdt@kline_1m", "ethusdt@kline_1m"])
        let probe = try LoopbackPort.closed()
        let server = try HealthServer(host: "127.0.0.1", port: probe) { monitor.readiness() }
        let task = Task { try await server.run() }
        defer { task.cancel() }
        #expect(try await server.listening() == probe)
        let http = CurlHTTPClient(options: .init(workers: 1))
        defer { http.shutdown() }
        func get(_ path: String) async throws -> (Int, String) {
            let response = try await http.get("http://127.0.0.1:\(probe)\(path)")
            return (response.status, String(decoding: response.body, as: UTF8.self))
        }
        #expect(try await get("/healthz").0 == 200)
        var (status, body) = try await get("/readyz")
        #expect(status == 503 && body.contains("\"behind\":[\"btcusdt@kline_1m\",\"ethusdt@kline_1m\"]"), "\(body)")
        monitor.streaming(["btcusdt@kline_1m", "ethusdt@kline_1m"], true)
        monitor.caughtUp("btcusdt@kline_1m")
        (status, body) = try await get("/readyz")
        #expect(status == 503 && body.contains("\"behind\":[\"ethusdt@kline_1m\"]"), "\(body)")
        monitor.caughtUp("ethusdt@kline_1m")
        #expect(try await get("/readyz").0 == 200)
        // A lost stream: behind again until caught up after the reconnect.
        monitor.streaming(["ethusdt@kline_1m"], false)
        monitor.streaming(["ethusdt@kline_1m"], true)
        #expect(try await get("/readyz").0 == 503)
        #expect(try await get("/metrics").0 == 404)
        #expect(throws: HealthPortError.self) { try HealthServer.checkAvailable(host: "127.0.0.1", port: probe) }
        #expect(throws: HealthPortError.self) { try HealthServer.checkAvailable(host: "not-an-ip", port: 1) }
    }

    @Test("a server that accepts the connection and never answers the upgrade: the connect fails after its timeout, naming it")
    func connectTimeout() async throws {
        let silent = try LoopbackPort.silent()
        defer { close(silent.fd) }
        let connector = WebSocketConnector(logger: Logger(label: "test"), connectTimeoutSeconds: 0.5)
        do {
            _ = try await connector.connect(url: "ws://127.0.0.1:\(silent.port)/stream?streams=btcusdt@kline_1m")
            Issue.record("connected to a server that never answered")
        } catch let error as StreamConnectError {
            #expect("\(error)".contains("no WebSocket upgrade within 0.5 s"), "\(error)")
        }
    }

    @Test("binance-sim's --stream-fault: each kind, with a count and a range of connections; anything else refused")
    func streamFaultFlags() {
        #expect(StreamFaultPlan(parsing: "drop:300@0..1") == .init(.dropAfter(messages: 300), connections: 0..<1))
        #expect(StreamFaultPlan(parsing: "refuse:503") == .init(.refuse(status: 503)))
        #expect(StreamFaultPlan(parsing: "final-lies@1..3") == .init(.finalLies, connections: 1..<3))
        #expect(StreamFaultPlan(parsing: "trades-skipped:4") == .init(.tradesSkipped(every: 4)))
        #expect(StreamFaultPlan(parsing: "final-late:1500") == .init(.finalLate(milliseconds: 1500)))
        for bad in ["drop", "drop:x", "drop:-1", "final-never:3", "nope", "drop:5@", "drop:5@2..1", "trades-skipped:0"] {
            #expect(StreamFaultPlan(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("the monitor's lag percentiles come from every commit, in fixed memory")
    func lagPercentiles() {
        let monitor = FollowMonitor(units: ["x"])
        for lag in 1...100 { monitor.committed(lag: Int64(lag)) }
        monitor.committed(lag: 60_000)
        let s = monitor.snapshot
        #expect(s.committed == 101 && s.lagP50 == 51 && s.lagP99 == 100 && s.lagMax == 60_000)
    }
}
