import BinanceAPI
import Clocks
import ExtractorCLI
import Foundation
import MariaDBStore
import StoreKit
import Telemetry
import TestSupport
import Testing

@Suite("Schema, migrations and database errors", .serialized, .timeLimit(.minutes(3)))
struct DatabaseTests {
    static func cli(_ args: [String]) async -> (Int32, String, String) {
        let out = LineSink(), err = LineSink()
        let status = await ExtractorCLI.run(arguments: args, environment: ["OTEL_SDK_DISABLED": "true", "BINANCE_KLINES_SOURCE": "rest"],
                                            context: RunContext(output: out, errors: err))
        return (status, out.text, err.text)
    }

    static func uriText(_ uri: DatabaseURI, password: String? = nil, database: String? = nil) -> String {
        TestDatabase.text(of: uri, password: password, database: database)
    }

    @Test("migrate creates every table once and is idempotent")
    func migrateIdempotent() async throws {
        let db = try await TestDatabase.make()
        defer { Task { await db.drop() } }
        let (first, out1, err1) = await Self.cli(["migrate", "--mysql-uri", Self.uriText(db.uri)])
        #expect(first == 0, "\(err1)")
        #expect(out1.contains("klines_m1") && out1.contains("spot_klines_s1") && out1.contains("klines_mo1"))
        let (second, out2, _) = await Self.cli(["migrate", "--mysql-uri", Self.uriText(db.uri)])
        #expect(second == 0)
        #expect(out2.contains("unchanged: \(KlineTable.all.count) tables"))
        let columns = try await db.query("""
            SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
            AND TABLE_NAME = 'klines_m1' AND COLUMN_NAME = 'volume'
            """)
        #expect(columns[0][0] == "decimal(38,18)")
    }

    @Test("migrate widens a legacy DECIMAL(20,8) table without changing its rows, and adds the unique key")
    func migrateUpgradesLegacy() async throws {
        let db = try await TestDatabase.make()
        defer { Task { await db.drop() } }
        try await db.execute("""
            CREATE TABLE klines_h1 (id BIGINT AUTO_INCREMENT PRIMARY KEY, symbol VARCHAR(20) NOT NULL,
            open_time DATETIME(3) NOT NULL, close_time DATETIME(3) NOT NULL, open_price DECIMAL(20,8) NOT NULL,
            high_price DECIMAL(20,8) NOT NULL, low_price DECIMAL(20,8) NOT NULL, close_price DECIMAL(20,8) NOT NULL,
            volume DECIMAL(20,8) NOT NULL, quote_asset_volume DECIMAL(20,8) NOT NULL, number_of_trades INT NOT NULL,
            taker_buy_base_asset_volume DECIMAL(20,8) NOT NULL, taker_buy_quote_asset_volume DECIMAL(20,8) NOT NULL)
            """)
        try await db.execute("""
            INSERT INTO klines_h1 VALUES (NULL, 'BTCUSDT', '2024-01-01 00:00:00', '2024-01-01 00:59:59.999', 42000.12345678,
            42100, 41900, 42050.5, 123.45678901, 5180000.1, 1000, 60.1, 2500000.2)
            """)
        let (status, out, err) = await Self.cli(["migrate", "--timeframes", "1h", "--market", "futures", "--mysql-uri", Self.uriText(db.uri)])
        #expect(status == 0, "\(err)")
        #expect(out.contains("upgraded: klines_h1"))
        let row = try await db.query("SELECT open_price, volume FROM klines_h1")
        #expect(row[0][0] == "42000.123456780000000000")
        #expect(row[0][1] == "123.456789010000000000")
        let keys = try await db.query("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'klines_h1' AND INDEX_NAME = 'uq_symbol_open_time'")
        #expect(keys[0][0] == "2")
    }

    @Test("values Binance sends are stored exactly: prices to 1e-8 and below, volumes above 10^13")
    func exactValues() async throws {
        let db = try await TestDatabase.make()
        defer { Task { await db.drop() } }
        let table = KlineTable(market: .futures, interval: .m1)
        _ = try await SchemaMigrator(pool: db.pool).migrate([table])
        let k = Kline(openTime: 1_704_067_200_000, open: try DecimalString(validating: "0.00000001"),
                      high: try DecimalString(validating: "0.000000012345678901"), low: try DecimalString(validating: "0.00000001"),
                      close: try DecimalString(validating: "0.00000001"), volume: try DecimalString(validating: "98765432109876543.12345678"),
                      closeTime: 1_704_067_259_999, quoteAssetVolume: try DecimalString(validating: "12345678901234567890.123456789012345678"),
                      numberOfTrades: 9_000_000_000, takerBuyBaseAssetVolume: try DecimalString(validating: "0"),
                      takerBuyQuoteAssetVolume: try DecimalString(validating: "1"))
        let store = KlineStore(pool: db.pool)
        try await store.upsert(table: table, symbol: try Symbol(validating: "PEPEUSDT"), klines: [k])
        let stored = try await store.klines(table: table, symbol: try Symbol(validating: "PEPEUSDT"))
        #expect(stored.count == 1)
        #expect(stored[0].matches(k))
        #expect(stored[0].volume == "98765432109876543.123456780000000000")
    }

    @Test("wrong credentials and an unknown database end the run at once with exit 2 and no password in sight")
    func badCredentials() async throws {
        let admin = try TestDatabase.adminURI
        let (status, _, errors) = await Self.cli(["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--api-url", "http://127.0.0.1:9",
                                                  "--mysql-uri", Self.uriText(admin, password: "wrong-secret")])
        #expect(status == 2)
        #expect(errors.contains("MariaDB error 1045"))
        #expect(errors.contains("check the user and password in MYSQL_URI"))
        #expect(!errors.contains("wrong-secret"))
        let (status2, _, errors2) = await Self.cli(["migrate", "--mysql-uri", Self.uriText(admin, database: "no_such_db_here")])
        #expect(status2 == 2)
        #expect(errors2.contains("1049"))
    }

    @Test("a database that is not there exits 2 with a hint")
    func noServer() async {
        let (status, _, errors) = await Self.cli(["migrate", "--mysql-uri", "mysql://u:p@127.0.0.1:1/db"])
        #expect(status == 2)
        #expect(errors.contains("is MariaDB running at that host and port, and may this machine reach it?"))
    }
}
