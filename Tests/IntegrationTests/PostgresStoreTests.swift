import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import HTTPTransport
import Pipeline
import PostgresStore
import StoreKit
import Telemetry
import TestSupport
import Testing

/// The PostgreSQL store on a real PostgreSQL server (Debian's, started by scripts/postgres.sh): exact values, whole
/// batches, upserts, the connection's faults.
@Suite("PostgreSQL store", .serialized, .timeLimit(.minutes(2)))
struct PostgresStoreTests {
    static let table = KlineTable(market: .futures, interval: .h1)
    static let from = UTCCalendar.parse("2024-01-01")!

    static func served(_ symbol: String, hours: Int64) async throws -> [Kline] {
        let sim = try await SimulatorFixture.start(clock: ManualClock(now: KlinesEndToEndTests.now))
        defer { Task { await sim.stop() } }
        return await sim.simulator.expectedKlines(symbol: symbol, interval: .h1, from: from, through: from + hours * 3_600_000 - 1)
    }

    @Test("each committed batch is announced on the table's channel (LISTEN klines_h1): the symbol, the newest open time, the rows")
    func notifiesListeners() async throws {
        let db = try await TestPostgres.make()
        defer { Task { await db.drop() } }
        let store = PostgresKlineStore(pool: db.pool)
        try await store.create([Self.table])
        let listener = try PostgresConnection(uri: db.uri)
        try listener.listen(Self.table.name)
        let klines = try await Self.served("BTCUSDT", hours: 3)
        let symbol = try Symbol(validating: "BTCUSDT")
        _ = try await store.write(table: Self.table, symbol: symbol, klines: klines)
        _ = try await store.write(table: Self.table, symbol: symbol, klines: [klines[2]])
        // A batch that fails (a row the column cannot hold) is not announced: nothing of it was committed.
        var bad = klines[0]
        bad.open = DecimalString(unchecked: "1" + String(repeating: "0", count: 30))
        _ = try? await store.write(table: Self.table, symbol: symbol, klines: [bad])
        let heard = try await listener.notifications(awaiting: 2)
        let last = klines[2].openTime
        #expect(heard == [
            .init(channel: "klines_h1", payload: "{\"symbol\":\"BTCUSDT\",\"open_time\":\(last),\"rows\":3}"),
            .init(channel: "klines_h1", payload: "{\"symbol\":\"BTCUSDT\",\"open_time\":\(last),\"rows\":1}"),
        ])
    }

    @Test("klines land exactly: numeric(38,18) and timestamptz hold what Binance sent, meme-coin volumes and 1e-8 prices included")
    func exact() async throws {
        let db = try await TestPostgres.make()
        defer { Task { await db.drop() } }
        let store = PostgresKlineStore(pool: db.pool)
        try await store.create([Self.table])
        for name in ["BTCUSDT", "PEPEUSDT"] {
            let symbol = try Symbol(validating: name)
            let klines = try await Self.served(name, hours: 24 * 30)
            #expect(try await store.lastOpenTime(table: Self.table, symbol: symbol) == nil)
            // In batches, as the writer sends them.
            for start in stride(from: 0, to: klines.count, by: 500) {
                try await store.upsert(table: Self.table, symbol: symbol, klines: Array(klines[start..<min(start + 500, klines.count)]))
            }
            let stored = try await store.klines(table: Self.table, symbol: symbol)
            #expect(stored.count == klines.count)
            #expect(zip(stored, klines).allSatisfy { $0.matches($1) }, "\(name): a stored value differs from the served one")
            #expect(try await store.lastOpenTime(table: Self.table, symbol: symbol) == klines.last?.openTime)
        }
        // The digits come back as stored, to 18 places: nothing went through a float.
        let pepe = try await store.klines(table: Self.table, symbol: try Symbol(validating: "PEPEUSDT"))
        #expect(pepe.contains { $0.volume.split(separator: ".")[0].count >= 15 }, "PEPE-scale volumes (10^15 and more) are stored whole")
        #expect(pepe.allSatisfy { $0.open.hasPrefix("0.0000") && $0.open.split(separator: ".")[1].count == 18 })
        let types = try await db.query("""
            SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns
            WHERE table_name = 'klines_h1' ORDER BY ordinal_position
            """)
        #expect(types.first { $0[0] == "open_time" }?[1] == "timestamp with time zone")
        #expect(types.filter { $0[1] == "numeric" }.allSatisfy { $0[2] == "38" && $0[3] == "18" } && types.filter { $0[1] == "numeric" }.count == 8)
        let key = try await db.query("""
            SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = 'klines_h1'::regclass AND i.indisprimary
            """)
        #expect(key.first?.first == "symbol,open_time")
    }

    @Test("a candle read again replaces its stored values (the open candle is corrected), and nothing is duplicated")
    func upsertCorrects() async throws {
        let db = try await TestPostgres.make()
        defer { Task { await db.drop() } }
        let store = PostgresKlineStore(pool: db.pool)
        try await store.create([Self.table])
        let symbol = try Symbol(validating: "ETHUSDT")
        var klines = try await Self.served("ETHUSDT", hours: 48)
        try await store.upsert(table: Self.table, symbol: symbol, klines: klines)
        klines[47].close = DecimalString(unchecked: "2345.67000001")
        klines[47].volume = DecimalString(unchecked: "987654.321")
        try await store.upsert(table: Self.table, symbol: symbol, klines: Array(klines[40...]))
        let stored = try await store.klines(table: Self.table, symbol: symbol)
        #expect(stored.count == 48)
        #expect(stored[47].close == "2345.670000010000000000" && stored[47].volume == "987654.321000000000000000")
        #expect(zip(stored, klines).allSatisfy { $0.matches($1) })
    }

    @Test("a series read as empty is written by plain COPY; when another writer stored some of its rows meanwhile, that batch goes through the upsert and the data ends exact")
    func freshSeriesCopy() async throws {
        let db = try await TestPostgres.make()
        defer { Task { await db.drop() } }
        let store = PostgresKlineStore(pool: db.pool), other = PostgresKlineStore(pool: db.pool)
        try await store.create([Self.table])
        let symbol = try Symbol(validating: "BNBUSDT")
        let klines = try await Self.served("BNBUSDT", hours: 30)
        #expect(try await store.lastOpenTime(table: Self.table, symbol: symbol) == nil)
        try await store.upsert(table: Self.table, symbol: symbol, klines: Array(klines[0..<10]))
        // Another run stores rows 10 to 14, with different values for row 12, before this one writes 10 to 29.
        var theirs = Array(klines[10..<15])
        theirs[2].close = DecimalString(unchecked: "1.5")
        try await other.upsert(table: Self.table, symbol: symbol, klines: theirs)
        try await store.upsert(table: Self.table, symbol: symbol, klines: Array(klines[10..<20]))
        try await store.upsert(table: Self.table, symbol: symbol, klines: Array(klines[20...]))
        let stored = try await store.klines(table: Self.table, symbol: symbol)
        #expect(stored.count == 30 && zip(stored, klines).allSatisfy { $0.matches($1) }, "the served values win, each row once")
    }

    @Test("a batch is all or nothing: a value the table cannot hold fails it whole, naming the table, and leaves nothing of it; the next batch goes in",
          arguments: StoreKind.allCases)
    func wholeBatches(store kind: StoreKind) async throws {
        let db = try await TestStore.make(kind)
        defer { Task { await db.drop() } }
        let store = try await db.klineWriter(creating: [Self.table])
        let symbol = try Symbol(validating: "BTCUSDT")
        var klines = try await Self.served("BTCUSDT", hours: 10)
        // 10^21 has 22 digits before the point: more than DECIMAL(38,18) / numeric(38,18) hold (20).
        klines[9].volume = DecimalString(unchecked: "1000000000000000000000")
        await #expect {
            _ = try await store.write(table: Self.table, symbol: symbol, klines: klines)
        } throws: { error in
            guard let error = error as? StoreFailure else { return false }
            return "\(error)".contains("klines_h1") && !error.isRetryable
        }
        #expect(try await db.count("klines_h1") == 0)
        _ = try await store.write(table: Self.table, symbol: symbol, klines: Array(klines[0..<9]))
        #expect(try await db.count("klines_h1") == 9)
    }

    @Test("the pipeline writes PostgreSQL through the same protocol: exact up to the last closed candle, never the open one, an outage recorded, a resume asking only for what is new")
    func pipeline() async throws {
        let m15: Int64 = 15 * 60_000
        let clock = ManualClock(now: KlinesEndToEndTests.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestPostgres.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let outage = KlineInterval.m15.openTime(containing: KlinesEndToEndTests.now - 30 * 3_600_000)
        await sim.simulator.setOutages([outage..<(outage + 8 * m15)])
        let table = KlineTable(market: .futures, interval: .m15)
        let store = PostgresKlineStore(pool: db.pool)
        try await store.create([table])
        let http = CurlHTTPClient(options: .init(workers: 1))
        defer { http.shutdown() }
        let client = BinanceClient(market: .futures, baseURL: sim.baseURL, http: http,
                                   limiter: RateLimiter(market: .futures, rule: Market.futures.defaultWeightLimit, clock: clock), clock: clock)
        let unit = ExtractionUnit(market: .futures, symbol: try Symbol(validating: "BTCUSDT"), interval: .m15)
        let settings = SymbolExtractor.Settings(planner: RangePlanner(lookbackMilliseconds: 72 * 3_600_000), batchSize: 100)

        let first = try await SymbolExtractor(unit: unit, source: client, store: store, clock: clock, settings: settings).run()
        let start = KlineInterval.m15.openTime(containing: KlinesEndToEndTests.now - 72 * 3_600_000)
        var lastClosed = KlineInterval.m15.openTime(containing: clock.now()) - m15
        var expected = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .m15, from: start, through: lastClosed + m15 - 1)
        var stored = try await store.klines(table: table, symbol: unit.symbol)
        #expect(first.skippedOpenCandle && stored.last?.openTime == lastClosed, "the open candle is never stored")
        #expect(stored.count == expected.count && zip(stored, expected).allSatisfy { $0.matches($1) })
        let confirmed = try await db.query("SELECT table_name, symbol, (extract(epoch FROM gap_start) * 1000)::bigint, (extract(epoch FROM gap_end) * 1000)::bigint FROM kline_gaps_confirmed")
        #expect(confirmed.map { $0.compactMap { $0 } } == [["klines_m15", "BTCUSDT", "\(outage)", "\(outage + 7 * m15)"]])

        clock.advance(by: 2 * 3_600_000)
        let second = try await SymbolExtractor(unit: unit, source: client, store: store, clock: clock, settings: settings).run()
        #expect(second.plan?.origin == .resume && second.requests == 1, "resumes from the last stored candle: \(String(describing: second.plan))")
        lastClosed = KlineInterval.m15.openTime(containing: clock.now()) - m15
        expected = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .m15, from: start, through: lastClosed + m15 - 1)
        stored = try await store.klines(table: table, symbol: unit.symbol)
        #expect(stored.count == expected.count && zip(stored, expected).allSatisfy { $0.matches($1) } && stored.last?.openTime == lastClosed)
    }

    @Test("an existing table that would round a value, and a role that may not write, are exit 2 before any fetch, naming the fix")
    func existingTablesChecked() async throws {
        let clock = ManualClock(now: KlinesEndToEndTests.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestPostgres.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let args = ["--timeframes", "1h", "--symbols", "BTCUSDT"]
        try await db.execute(PostgresTables.createSQL(Self.table.definition).replacingOccurrences(of: "\"open_price\" numeric(38,18)", with: "\"open_price\" double precision"))
        let rounded = await KlinesEndToEndTests.extract(args + ["--database-url", db.uriText], api: sim.baseURL, uri: nil, clock: clock)
        #expect(rounded.status == 2 && rounded.errors.contains("ALTER TABLE klines_h1 ALTER COLUMN open_price TYPE numeric(38,18)"), "\(rounded.errors)")
        #expect(await sim.simulator.statistics.klinesRequests == 0)

        try await db.execute("DROP TABLE klines_h1")
        let reader = "bx_reader_\(UInt32.random(in: 0...UInt32.max))"
        try await db.execute("CREATE ROLE \(reader) LOGIN PASSWORD 'r3ad'")
        try await db.execute(PostgresTables.createSQL(Self.table.definition))
        try await db.execute(PostgresTables.createSQL(ConfirmedGapTable.definition))
        for ledger in LedgerTables.all { try await db.execute(PostgresTables.createSQL(ledger)) }
        try await db.execute("GRANT SELECT ON klines_h1, kline_gaps_confirmed, archive_files, row_sources TO \(reader)")
        defer { Task { try? await db.execute("DROP OWNED BY \(reader); DROP ROLE \(reader)") } }
        let url = "postgresql://\(reader):r3ad@\(db.uri.host):\(db.uri.port)/\(db.uri.database)"
        let denied = await KlinesEndToEndTests.extract(args + ["--database-url", url], api: sim.baseURL, uri: nil, clock: clock)
        #expect(denied.status == 2 && denied.errors.contains("may not SELECT, INSERT and UPDATE klines_h1"), "\(denied.errors)")
        #expect(!denied.errors.contains("r3ad"))
        #expect(await sim.simulator.statistics.klinesRequests == 0)
    }

    @Test("migrate creates every table on PostgreSQL, leaves them unchanged the next time, and names the ALTER for a table that would round")
    func migrate() async throws {
        let db = try await TestPostgres.make()
        defer { Task { await db.drop() } }
        func run() async -> (Int32, String, String) {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(arguments: ["migrate", "--database-url", db.uriText], environment: ["OTEL_SDK_DISABLED": "true"],
                                                context: RunContext(output: out, errors: err))
            return (status, out.text, err.text)
        }
        let first = await run()
        #expect(first.0 == 0, "\(first.2)")
        let tables = Set(try await db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").compactMap { $0.first ?? nil })
        let expected = Set(KlineTable.all.map(\.name) + TableCatalogue.otherTables.map(\.name))
        #expect(tables == expected, "missing: \(expected.subtracting(tables)), unexpected: \(tables.subtracting(expected))")
        #expect(first.1.contains("created: ") && first.1.contains("funding_rates") && first.1.contains("unchanged: 0 tables"))
        let second = await run()
        #expect(second.0 == 0 && second.1.contains("created: \n") && second.1.contains("unchanged: \(expected.count) tables"), "\(second.1)")
        try await db.execute("ALTER TABLE agg_trades ALTER COLUMN price TYPE numeric(20,8)")
        let narrow = await run()
        #expect(narrow.0 == 2 && narrow.2.contains("ALTER TABLE agg_trades ALTER COLUMN price TYPE numeric(38,18)"), "\(narrow.2)")
    }

    @Test("wrong credentials are a configuration error that never shows the password; a URL option libpq should not get is named")
    func badConfiguration() async throws {
        var uri = try TestPostgres.adminURI
        uri.password = "not-the-password-zq9"
        let pool = PostgresPool(uri: uri, size: 1)
        defer { pool.shutdown() }
        await #expect {
            _ = try await pool.withConnection { try $0.execute("SELECT 1") }
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.isConfiguration && !error.isConnectionLost && !error.description.contains("zq9") && error.description.contains("***")
        }
        for (text, named) in [("postgresql://u:s3cret@db:5432/market?sslmode=verify-all", "sslmode 'verify-all'"),
                              ("postgres://u:s3cret@db/market?target_session_attrs=any", "option 'target_session_attrs'"),
                              ("postgresql://u:s3cret@db:99999/market", "port '99999'"),
                              ("mysql://u:s3cret@db/market", "scheme 'mysql'")] {
            #expect {
                _ = try PostgresURI(parsing: text)
            } throws: { error in
                "\(error)".contains(named) && !"\(error)".contains("s3cret")
            }
        }
        let parsed = try PostgresURI(parsing: "postgres://bx:p%40ss@[::1]:6432/market?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3")
        #expect(parsed.password == "p@ss" && parsed.host == "::1" && parsed.port == 6432 && parsed.options["sslrootcert"] == "/etc/ca.pem")
        #expect(parsed.description == "postgresql://bx:***@[::1]:6432/market?connect_timeout=3&sslmode=verify-full&sslrootcert=/etc/ca.pem")
    }

    @Test("the server restarting between batches is survived: the pool reconnects and the next batch goes in")
    func serverRestart() async throws {
        // A server of the test's own: the shared one serves other suites meanwhile.
        let server = try DedicatedStore(.postgresql)
        defer { server.destroy() }
        let pool = PostgresPool(uri: try PostgresURI(parsing: try await server.database("market")), size: 2)
        defer { pool.shutdown() }
        let store = PostgresKlineStore(pool: pool)
        try await store.create([Self.table])
        let symbol = try Symbol(validating: "SOLUSDT")
        let klines = try await Self.served("SOLUSDT", hours: 20)
        try await store.upsert(table: Self.table, symbol: symbol, klines: Array(klines[0..<10]))
        try server.stop()
        try server.start()
        try await store.upsert(table: Self.table, symbol: symbol, klines: Array(klines[10...]))
        #expect(pool.reconnects >= 1)
        #expect(try await store.klines(table: Self.table, symbol: symbol).count == 20)
    }
}
