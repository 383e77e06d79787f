import BinanceAPI
import BinanceSimulator
import BuildInfo
import Clocks
import ExtractorCLI
import Foundation
import MariaDBStore
import StoreKit
import TestSupport
import Testing

/// Tables that exist are checked before a row goes in: the shapes petrosa-binance-data-extractor created, narrower
/// decimals, epoch numbers, duplicates; and `migrate` upgrades what it can convert safely (a real MariaDB).
@Suite("Existing tables are checked before a row goes in", .serialized, .timeLimit(.minutes(3)))
struct TableShapeTests {
    typealias E2E = KlinesEndToEndTests
    static let m15 = KlineTable(market: .futures, interval: .m15)

    /// petrosa-binance-data-extractor's README DDL: an AUTO_INCREMENT id, DECIMAL(20,8), DATETIME without fractions,
    /// a unique key on (symbol, open_time), created_at / updated_at filled by the server.
    static let readmeShape = """
        CREATE TABLE klines_m15 (
          id BIGINT AUTO_INCREMENT PRIMARY KEY, symbol VARCHAR(20) NOT NULL, open_time DATETIME NOT NULL, close_time DATETIME NOT NULL,
          open_price DECIMAL(20,8) NOT NULL, high_price DECIMAL(20,8) NOT NULL, low_price DECIMAL(20,8) NOT NULL,
          close_price DECIMAL(20,8) NOT NULL, volume DECIMAL(20,8) NOT NULL, quote_asset_volume DECIMAL(20,8) NOT NULL,
          number_of_trades INT NOT NULL, taker_buy_base_asset_volume DECIMAL(20,8) NOT NULL,
          taker_buy_quote_asset_volume DECIMAL(20,8) NOT NULL,
          created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
          UNIQUE KEY uq_symbol_open_time (symbol, open_time))
        """

    /// petrosa-binance-data-extractor's code (db/mysql_adapter.py, SQLAlchemy): a VARCHAR id, `timestamp`, `interval`
    /// and provenance columns, all NOT NULL, and no unique key on (symbol, open_time).
    static let codeShape = """
        CREATE TABLE klines_m15 (
          id VARCHAR(64) NOT NULL PRIMARY KEY, symbol VARCHAR(20) NOT NULL, timestamp DATETIME NOT NULL, open_time DATETIME NOT NULL,
          close_time DATETIME NOT NULL, `interval` VARCHAR(10) NOT NULL, open_price DECIMAL(20,8) NOT NULL,
          high_price DECIMAL(20,8) NOT NULL, low_price DECIMAL(20,8) NOT NULL, close_price DECIMAL(20,8) NOT NULL,
          volume DECIMAL(20,8) NOT NULL, quote_asset_volume DECIMAL(20,8) NOT NULL, number_of_trades INT NOT NULL,
          taker_buy_base_asset_volume DECIMAL(20,8) NOT NULL, taker_buy_quote_asset_volume DECIMAL(20,8) NOT NULL,
          price_change DECIMAL(20,8) NULL, price_change_percent DECIMAL(10,4) NULL, extracted_at DATETIME NOT NULL,
          extractor_version VARCHAR(20) NOT NULL, source VARCHAR(50) NOT NULL,
          KEY idx_klines_m15_symbol_timestamp (symbol, timestamp))
        """

    static func run(_ symbols: String, sim: SimulatorFixture, db: TestDatabase, clock: any WallClock) async -> E2E.Run {
        await E2E.extract(["--timeframes", "15m", "--symbols", symbols, "--lookback-hours", "24"], sim: sim, db: db, clock: clock)
    }

    @Test("the README shape: written while every value fits DECIMAL(20,8) exactly, close times to the second; a value that does not fit is exit 2 before its batch; after migrate, exact")
    func readmeShapeThenMigrate() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        try await db.execute(Self.readmeShape)
        // A row stored by petrosa before us.
        try await db.execute("""
            INSERT INTO klines_m15 (symbol, open_time, close_time, open_price, high_price, low_price, close_price, volume,
            quote_asset_volume, number_of_trades, taker_buy_base_asset_volume, taker_buy_quote_asset_volume)
            VALUES ('SOLUSDT', '2024-01-01 00:00:00', '2024-01-01 00:14:59', 100, 101, 99, 100.5, 10, 1000, 5, 4, 400)
            """)

        // BTCUSDT's values all fit DECIMAL(20,8): written, as petrosa's readers expect them.
        let btc = await Self.run("BTCUSDT", sim: sim, db: db, clock: clock)
        #expect(btc.status == 0, "\(btc.errors)")
        #expect(btc.errors.contains("close times are stored to the second"))
        let start = KlineInterval.m15.openTime(containing: E2E.now - 24 * 3_600_000)
        let expected = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .m15, from: start, through: E2E.now - 15 * 60_000)
        let rows = try await db.query("""
            SELECT CAST(UNIX_TIMESTAMP(open_time) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(close_time) * 1000 AS SIGNED), volume
            FROM klines_m15 WHERE symbol = 'BTCUSDT' AND open_time >= FROM_UNIXTIME(\(start) * 0.001) ORDER BY open_time
            """)
        #expect(rows.count == expected.count)
        #expect(zip(rows, expected).allSatisfy { r, e in
            r[0] == "\(e.openTime)" && r[1] == "\(e.closeTime - 999)"
                && DecimalString.compare(DecimalString(unchecked: r[2] ?? ""), e.volume) == 0
        })

        // PEPEUSDT's volumes pass 10^13: DECIMAL(20,8) cannot hold them. Exit 2, naming table, column and value.
        let before = try await db.count("klines_m15")
        let pepe = await Self.run("PEPEUSDT", sim: sim, db: db, clock: clock)
        #expect(pepe.status == 2, "\(pepe.errors)")
        #expect((pepe.output + pepe.errors).contains("table klines_m15, column `volume` is DECIMAL(20,8)"), "\(pepe.output)")
        #expect(try await db.count("klines_m15") == before, "nothing of PEPEUSDT was written")

        // migrate upgrades in place, keeping petrosa's columns, keys and rows, and says what it changed.
        let (status, out, err) = await DatabaseTests.cli(["migrate", "--timeframes", "15m", "--market", "futures", "--mysql-uri", db.uriText])
        #expect(status == 0, "\(err)")
        #expect(out.contains("klines_m15: MODIFY `open_price` DECIMAL(38,18)") && out.contains("MODIFY `close_time` DATETIME(3)"), "\(out)")
        let kept = try await db.query("SELECT id, close_price, created_at IS NOT NULL FROM klines_m15 WHERE symbol = 'SOLUSDT'")
        #expect(kept.count == 1 && kept[0][1] == "100.500000000000000000" && kept[0][2] == "1")
        // The close times DATETIME kept to the second (petrosa's row and ours alike) are exact again: …:14:59.999.
        #expect(out.contains("UPDATE close_time of"), "\(out)")
        let truncated = try await db.query("SELECT COUNT(*) FROM klines_m15 WHERE MICROSECOND(close_time) <> 999000")
        #expect(truncated.first?.first == "0", "close times left at …:59.000: \(truncated)")
        let sol = try await db.query("SELECT CAST(close_time AS CHAR) FROM klines_m15 WHERE symbol = 'SOLUSDT'")
        #expect(sol.first?.first == "2024-01-01 00:14:59.999", "\(sol)")

        let again = await Self.run("PEPEUSDT,BTCUSDT", sim: sim, db: db, clock: clock)
        #expect(again.status == 0, "\(again.errors)")
        try await E2E.expectExact(db, sim, table: Self.m15, symbol: "PEPEUSDT", from: start, through: E2E.now)
        // The petrosa-style read (by time, ordered) returns every candle, each once.
        let read = try await db.query("""
            SELECT COUNT(*), COUNT(DISTINCT open_time) FROM klines_m15 WHERE symbol = 'BTCUSDT'
            AND open_time >= FROM_UNIXTIME(\(start) * 0.001) AND open_time < FROM_UNIXTIME(\(E2E.now) * 0.001) ORDER BY open_time
            """)
        #expect(read[0][0] == "\(expected.count)" && read[0][1] == "\(expected.count)")
    }

    @Test("the code shape keeps serving petrosa's readers: rows in its shape, upserted on its id, nothing duplicated; after migrate, exact")
    func codeShapeWritten() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        try await db.execute(Self.codeShape)
        // A row petrosa stored.
        try await db.execute("""
            INSERT INTO klines_m15 VALUES ('SOLUSDT_1704067200000', 'SOLUSDT', '2024-01-01 00:00:00', '2024-01-01 00:00:00',
            '2024-01-01 00:14:59', '15m', 1, 2, 1, 1.5, 10, 15, 3, 5, 7, 0.5, 50, '2024-01-01 00:20:00', '1.0.0', 'binance-futures')
            """)
        let start = KlineInterval.m15.openTime(containing: E2E.now - 24 * 3_600_000)
        for round in 0..<2 {
            let run = await Self.run("BTCUSDT", sim: sim, db: db, clock: clock)
            #expect(run.status == 0, "round \(round): \(run.errors)")
            #expect(run.errors.contains("rows are written in its shape"))
        }
        let expected = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .m15, from: start, through: E2E.now - 15 * 60_000)
        // petrosa's read: by `timestamp`, ordered.
        let rows = try await db.query("""
            SELECT id, CAST(UNIX_TIMESTAMP(timestamp) * 1000 AS SIGNED), CAST(UNIX_TIMESTAMP(open_time) * 1000 AS SIGNED), `interval`,
                   extractor_version, source, extracted_at IS NOT NULL, close_price
            FROM klines_m15 WHERE symbol = 'BTCUSDT' AND timestamp >= FROM_UNIXTIME(\(start) * 0.001)
            AND timestamp < FROM_UNIXTIME(\(E2E.now) * 0.001) ORDER BY timestamp
            """)
        #expect(rows.count == expected.count, "two runs, each candle once")
        #expect(zip(rows, expected).allSatisfy { r, e in
            r[0] == "BTCUSDT_\(e.openTime)" && r[1] == "\(e.openTime)" && r[2] == "\(e.openTime)" && r[3] == "15m"
                && r[4] == BuildInfo.version && r[5] == "binance-futures" && r[6] == "1"
                && DecimalString.compare(DecimalString(unchecked: r[7] ?? ""), e.close) == 0
        })
        #expect(try await db.query("SELECT close_price FROM klines_m15 WHERE id = 'SOLUSDT_1704067200000'").map { $0[0] } == ["1.50000000"])

        // PEPEUSDT does not fit DECIMAL(20,8): exit 2; after migrate (widened, DATETIME(3), unique key) it is exact.
        let pepe = await Self.run("PEPEUSDT", sim: sim, db: db, clock: clock)
        #expect(pepe.status == 2, "\(pepe.errors)")
        let (status, out, err) = await DatabaseTests.cli(["migrate", "--timeframes", "15m", "--market", "futures", "--mysql-uri", db.uriText])
        #expect(status == 0, "\(err)")
        #expect(out.contains("ADD UNIQUE KEY `uq_symbol_open_time`"), "\(out)")
        let again = await Self.run("PEPEUSDT,BTCUSDT", sim: sim, db: db, clock: clock)
        #expect(again.status == 0, "\(again.errors)")
        try await E2E.expectExact(db, sim, table: Self.m15, symbol: "PEPEUSDT", from: start, through: E2E.now)
        let ids = try await db.query("SELECT COUNT(*) FROM klines_m15 WHERE symbol = 'PEPEUSDT' AND id = CONCAT('PEPEUSDT_', CAST(UNIX_TIMESTAMP(open_time) * 1000 AS SIGNED))")
        #expect(ids[0][0] == "\(expected.count)")
    }

    @Test("an unknown shape (a NOT NULL column nobody fills) is exit 2 naming the column, before any fetch")
    func unknownShapeRefused() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        try await db.execute(Self.readmeShape.replacingOccurrences(of: "created_at TIMESTAMP", with: "exchange VARCHAR(10) NOT NULL, created_at TIMESTAMP"))
        let run = await Self.run("BTCUSDT", sim: sim, db: db, clock: clock)
        #expect(run.status == 2, "\(run.errors)")
        #expect(run.errors.contains("table klines_m15, column `exchange`: found varchar(10) NOT NULL without a default"), "\(run.errors)")
        #expect(run.errors.contains("ALTER TABLE `klines_m15` MODIFY `exchange` varchar(10) NULL"), "the command that fixes it")
        #expect(await sim.simulator.statistics.klinesRequests == 0)
        #expect(try await db.count("klines_m15") == 0)
    }

    @Test("open_time holding epoch numbers: the run and migrate both refuse, explaining why, and change nothing")
    func epochNumbersRefused() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        try await db.execute(Self.readmeShape.replacingOccurrences(of: "open_time DATETIME NOT NULL", with: "open_time BIGINT NOT NULL"))
        let run = await Self.run("BTCUSDT", sim: sim, db: db, clock: clock)
        #expect(run.status == 2)
        #expect(run.errors.contains("column `open_time`: found bigint(20) (epoch numbers)"), "\(run.errors)")
        #expect(try await db.count("klines_m15") == 0)
        let (status, out, err) = await DatabaseTests.cli(["migrate", "--timeframes", "15m", "--market", "futures", "--mysql-uri", db.uriText])
        #expect(status == 2, "\(out)")
        #expect(err.contains("epoch numbers, which migrate does not convert"), "\(err)")
        #expect(!out.contains("unchanged"))
    }

    @Test("migrate adds the unique key only when no duplicates stand in its way, and lists them otherwise")
    func duplicatesReported() async throws {
        let db = try await TestDatabase.make()
        defer { Task { await db.drop() } }
        try await db.execute(Self.readmeShape.replacingOccurrences(of: ",\n  UNIQUE KEY uq_symbol_open_time (symbol, open_time))", with: ")"))
        for _ in 0..<2 {
            try await db.execute("""
                INSERT INTO klines_m15 (symbol, open_time, close_time, open_price, high_price, low_price, close_price, volume,
                quote_asset_volume, number_of_trades, taker_buy_base_asset_volume, taker_buy_quote_asset_volume)
                VALUES ('ETHUSDT', '2024-01-01 00:00:00', '2024-01-01 00:14:59', 1, 1, 1, 1, 1, 1, 1, 1, 1)
                """)
        }
        let (status, _, err) = await DatabaseTests.cli(["migrate", "--timeframes", "15m", "--market", "futures", "--mysql-uri", db.uriText])
        #expect(status == 2)
        #expect(err.contains("holds candles stored more than once") && err.contains("ETHUSDT 2024-01-01 00:00:00 (2 rows)"), "\(err)")
        #expect(try await db.count("klines_m15") == 2, "nothing deleted")
    }

    @Test("petrosa's funding_rates keeps serving its readers: rows in its shape, upserted on its id; our shape with a narrower column is exit 2 naming the ALTER")
    func petrosaFunding() async throws {
        let clock = ManualClock(now: E2E.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        try await db.execute("""
            CREATE TABLE funding_rates (
              id VARCHAR(64) NOT NULL PRIMARY KEY, symbol VARCHAR(20) NOT NULL, timestamp DATETIME NOT NULL,
              funding_rate DECIMAL(20,8) NOT NULL, funding_time DATETIME NOT NULL, mark_price DECIMAL(20,8) NULL,
              index_price DECIMAL(20,8) NULL, last_funding_rate DECIMAL(20,8) NULL, funding_interval_hours INT NOT NULL,
              extracted_at DATETIME NOT NULL, extractor_version VARCHAR(20) NOT NULL, source VARCHAR(50) NOT NULL,
              KEY idx_funding_rates_symbol_timestamp (symbol, timestamp))
            """)
        let start = UTCCalendar.parse("2024-01-01")!
        for _ in 0..<2 {
            let run = await HistoryJobsTests.cli(["funding", "--symbols", "BTCUSDT", "--start", "2024-01-01"], sim: sim, db: db, clock: clock)
            #expect(run.status == 0, "\(run.errors)")
        }
        let expected = await sim.simulator.expectedFundingRates(symbol: "BTCUSDT", from: start, through: E2E.now)
        let rows = try await db.query("""
            SELECT id, CAST(UNIX_TIMESTAMP(timestamp) * 1000 AS SIGNED), funding_rate, funding_interval_hours, source, extractor_version
            FROM funding_rates WHERE symbol = 'BTCUSDT' AND timestamp >= '2024-01-01' ORDER BY timestamp
            """)
        #expect(rows.count == expected.count && !expected.isEmpty, "each funding time once, after two runs")
        #expect(zip(rows, expected).allSatisfy { r, e in
            r[0] == "BTCUSDT_\(e.fundingTime)" && r[1] == "\(e.fundingTime - e.fundingTime % 1000)" && r[3] == "8"
                && r[4] == "binance-futures" && r[5] == BuildInfo.version
                && Double(r[2] ?? "") == Double(e.fundingRate.text)
        })

        // Our own shape, but with a narrower rate column: exit 2 before any fetch, naming the ALTER that fixes it.
        try await db.execute("DROP TABLE funding_rates")
        try await db.execute(MariaDBTables.createSQL(FundingTable.definition).replacingOccurrences(of: "`funding_rate` DECIMAL(38,18)", with: "`funding_rate` DECIMAL(20,8)"))
        await sim.simulator.resetStatistics()
        let narrow = await HistoryJobsTests.cli(["funding", "--symbols", "BTCUSDT", "--start", "2024-01-01"], sim: sim, db: db, clock: clock)
        #expect(narrow.status == 2, "\(narrow.errors)")
        #expect(narrow.errors.contains("ALTER TABLE `funding_rates` MODIFY `funding_rate` DECIMAL(38,18) NOT NULL"), "\(narrow.errors)")
        #expect(await sim.simulator.statistics.fundingRequests == 0)

        // migrate widens it in place (the kline tables are created meanwhile), and the run is exact.
        let (status, out, err) = await DatabaseTests.cli(["migrate", "--mysql-uri", db.uriText])
        #expect(status == 0, "\(err)")
        #expect(out.contains("funding_rates: MODIFY `funding_rate` DECIMAL(38,18) NOT NULL"), "\(out)")
        let after = await HistoryJobsTests.cli(["funding", "--symbols", "BTCUSDT", "--start", "2024-01-01"], sim: sim, db: db, clock: clock)
        #expect(after.status == 0, "\(after.errors)")
        #expect(try await db.count("funding_rates") == expected.count)
    }

    @Test("a value DECIMAL(20,8) would round is refused, naming it")
    func roundedValueRefused() throws {
        var check = KlineTableCheck()
        check.narrowDecimals["close_price"] = .init(integerDigits: 12, scale: 8)
        let k = Kline(openTime: 0, open: .init(unchecked: "59312.26"), high: .init(unchecked: "59400"), low: .init(unchecked: "59300"),
                      close: .init(unchecked: "59312.269838025678"), volume: .init(unchecked: "1"), closeTime: 59_999,
                      quoteAssetVolume: .init(unchecked: "1"), numberOfTrades: 1, takerBuyBaseAssetVolume: .init(unchecked: "0"),
                      takerBuyQuoteAssetVolume: .init(unchecked: "0"))
        let error = #expect(throws: SchemaError.self) { try check.verify([k], table: "klines_m1") }
        #expect(error?.message.contains("59312.269838025678") == true && error?.message.contains("rounded") == true)
        var fits = k
        fits.close = .init(unchecked: "59312.26983800")
        try check.verify([fits], table: "klines_m1")
    }
}
