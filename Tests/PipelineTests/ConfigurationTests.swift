import Foundation
import BinanceAPI
import Clocks
@testable import ExtractorCLI
import MariaDBStore
import StoreKit
import Telemetry
import Testing

@Suite("Command line and configuration", .timeLimit(.minutes(2)))
struct ConfigurationTests {
    func run(_ args: [String], env: [String: String] = [:]) async -> (Int32, String, String) {
        let out = LineSink(), err = LineSink()
        var env = env
        env["OTEL_SDK_DISABLED"] = "true"
        env["BINANCE_KLINES_SOURCE"] = env["BINANCE_KLINES_SOURCE"] ?? "rest"  // REST behaviour; archive tests ask for auto
        let status = await ExtractorCLI.run(arguments: args, environment: env, context: RunContext(output: out, errors: err))
        return (status, out.text, err.text)
    }

    @Test("bad input exits 2 with a message naming the value", arguments: [
        (["klines", "--timeframes", "7m", "--symbols", "BTCUSDT", "--dry-run"], "unknown timeframe '7m'"),
        (["klines", "--timeframes", "1m", "--symbols", "btc-usdt!", "--dry-run"], "invalid symbol 'btc-usdt!'"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--mysql-uri", "sqlite://u:secret@h/db"], "scheme 'sqlite'"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--database-url", "postgresql://u:secret@h/db?sslmode=strict"], "sslmode 'strict'"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--database-url", "postgres://u:secret@h/db", "--mysql-uri", "mysql://u:secret@h/db"],
         "--database-url and --mysql-uri both name a database"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--mysql-uri", "mysql://u:secret@h:99999/db"], "port '99999'"),
        (["klines", "--timeframes", "1s", "--symbols", "BTCUSDT", "--dry-run"], "not offered on futures"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT"], "no database configured"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--dry-run", "--start", "2024-02-30"], "invalid --start '2024-02-30'"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--dry-run", "--market", "margin"], "invalid market 'margin'"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--dry-run", "--batch-size", "0"], "--batch-size 0"),
        (["klines", "--bogus"], "Unknown option '--bogus'"),
    ])
    func badInput(args: [String], message: String) async {
        let (status, _, errors) = await run(args)
        #expect(status == 2)
        #expect(errors.contains(message), "stderr was: \(errors)")
        #expect(!errors.contains("secret"))
    }

    @Test("environment variables fill in for flags; flags win")
    func environmentFallback() async {
        let (status, _, errors) = await run(["klines", "--timeframes", "1m", "--dry-run"],
                                            env: ["DEFAULT_SYMBOLS": "BTCUSDT,bad symbol"])
        #expect(status == 2)
        #expect(errors.contains("invalid symbol 'bad symbol'"))
        let (status2, _, errors2) = await run(["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--dry-run"],
                                              env: ["DB_BATCH_SIZE": "many"])
        #expect(status2 == 2)
        #expect(errors2.contains("DB_BATCH_SIZE='many'"))
    }

    @Test("bad environment values exit 2 naming the variable", arguments: [
        (["LOOKBACK_HOURS": "-3"], "LOOKBACK_HOURS='-3'"),
        (["MAX_WORKERS": "four"], "MAX_WORKERS='four'"),
        (["BINANCE_FUTURES_API_URL": "ftp://fapi.binance.com"], "invalid Binance URL 'ftp://fapi.binance.com' (BINANCE_FUTURES_API_URL)"),
        (["LOG_LEVEL": "verbose"], "invalid log level 'verbose'"),
        (["MYSQL_URI": "mysql://u:hunter2@db"], "no database name"),
        (["SHUTDOWN_TIMEOUT": "0"], "SHUTDOWN_TIMEOUT='0'"),
        (["SHARD": "3/3"], "invalid shard '3/3'"),
        (["WEIGHT_SHARE": "1.5"], "invalid weight share 1.5"),
        (["JOB_COMPLETION_INDEX": "2"], "JOB_COMPLETION_INDEX=2 is set (an Indexed Job's pod) but SHARD_COUNT is not"),
        (["DB_ADAPTER": "mongodb"], "DB_ADAPTER=mongodb is not supported by this build"),
        (["DB_ADAPTER": "data_manager"], "DB_ADAPTER=data_manager is not supported by this build"),
        (["DB_ADAPTER": "postgresql", "MYSQL_URI": "mysql://u:hunter2@db/x"], "DB_ADAPTER=postgresql disagrees with the database URL mysql://u:***@db:3306/x"),
        (["DB_ADAPTER": "mysql", "DATABASE_URL": "postgresql://u:hunter2@db/x"], "DB_ADAPTER=mysql disagrees with the database URL postgresql://u:***@db:5432/x"),
        (["DATABASE_URL": "postgresql://u:hunter2@db/x", "MYSQL_URI": "mysql://u:hunter2@db/x"], "both DATABASE_URL and MYSQL_URI name a database"),
        (["DATABASE_URL_FILE": "/nonexistent/url"], "DATABASE_URL_FILE=/nonexistent/url cannot be read"),
        (["DATABASE_URL": "postgresql://u:hunter2@db/x?options=-c%20x"], "option 'options' is not one this program passes to libpq"),
        (["DB_ADAPTER": "sqlite"], "invalid DB_ADAPTER='sqlite'"),
        (["MYSQL_URI": "mysql://u:hunter2@db/x?ssl=true"], "option 'ssl' is not supported: use ssl-mode=REQUIRED"),
        (["MYSQL_URI": "mysql://u:hunter2@db/x?sslmode=require"], "unknown option 'sslmode'"),
        (["MYSQL_URI": "mysql://u:hunter2@db/x?ssl-mode=STRICT"], "ssl-mode 'STRICT' is not one of DISABLED, PREFERRED"),
        (["MYSQL_URI": "mysql://u:hunter2@db/x?ssl-ca"], "option 'ssl-ca' has no value"),
        (["MYSQL_URI_FILE": "/nonexistent/uri"], "MYSQL_URI_FILE=/nonexistent/uri cannot be read"),
        (["MYSQL_URI": "mysql://u:hunter2@db/x", "MYSQL_URI_FILE": "/run/secrets/uri"], "both MYSQL_URI and MYSQL_URI_FILE are set"),
    ])
    func badEnvironment(env: [String: String], message: String) async {
        let (status, _, errors) = await run(["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--dry-run"], env: env)
        #expect(status == 2)
        #expect(errors.contains(message), "stderr was: \(errors)")
        #expect(!errors.contains("hunter2"))
    }

    @Test("--help documents every environment variable and exits 0")
    func help() async {
        let (status, output, _) = await run(["klines", "--help"])
        #expect(status == 0)
        for name in ["BINANCE_API_URL", "BINANCE_FUTURES_API_URL", "DEFAULT_SYMBOLS", "MYSQL_URI", "DB_BATCH_SIZE", "MAX_WORKERS",
                     "LOOKBACK_HOURS", "LOG_LEVEL"] {
            #expect(output.contains(name), "help lacks \(name)")
        }
    }

    @Test("a petrosa-binance-data-extractor setup drops in: mysql+pymysql://, LOG_LEVEL=WARN/FATAL, DB_ADAPTER=mysql, --period, --parallel")
    func petrosaSettings() async throws {
        let uri = try DatabaseURI(parsing: "mysql+pymysql://bx:pw@db:3306/binance?charset=utf8mb4")
        #expect(uri.host == "db" && uri.database == "binance" && uri.tlsMode == .disabled)
        #expect(ConfigurationReader.level(named: "WARN") == .warning && ConfigurationReader.level(named: "WARNING") == .warning)
        #expect(ConfigurationReader.level(named: "FATAL") == .critical && ConfigurationReader.level(named: "CRITICAL") == .critical && ConfigurationReader.level(named: "Info") == .info)
        let env = ["MYSQL_URI": "mysql+pymysql://bx:pw@db:3306/binance", "LOG_LEVEL": "WARN", "DB_ADAPTER": "mysql"]
        let config = try ConfigurationReader.klines(try KlinesCommand.parse(["--period", "15m", "--symbols", "BTCUSDT", "--parallel", "3"]), environment: env)
        #expect(config.intervals == [.m15] && config.common.maxWorkers == 3 && config.common.logLevel == .warning)
        #expect(config.common.database?.mariadb?.database == "binance" && config.common.warnings.isEmpty)
        // A password typed on the command line shows in `ps`: warned about.
        let flagged = try ConfigurationReader.klines(try KlinesCommand.parse(["--timeframes", "1h", "--symbols", "BTCUSDT", "--mysql-uri", "mysql://u:pw@h/d"]),
                                         environment: [:])
        #expect(flagged.common.warnings.contains { $0.contains("--mysql-uri") && !$0.contains("pw@") })
        let (status, _, errors) = await run(["klines", "--period", "15m", "--timeframes", "1h", "--symbols", "BTCUSDT", "--dry-run"])
        #expect(status == 2 && errors.contains("--timeframes 1h and --period 15m disagree"))
    }

    @Test("petrosa's CronJob and manual-job flags drop in: --db-adapter, --db-uri, --symbol, --start-date/--end-date, --max-gap-size-days; ENABLE_OTEL=false")
    func petrosaFlags() async throws {
        let config = try ConfigurationReader.klines(try KlinesCommand.parse(["--period=5m", "--max-workers=15", "--db-adapter=mysql", "--symbol", "ETHUSDT",
                                                                 "--db-uri", "mysql+pymysql://bx:pw@db:3306/binance", "--start-date", "2023-01-01T00:00:00Z",
                                                                 "--end-date", "2023-02-01T00:00:00Z"]),
                                        environment: [:], now: 1_764_633_600_000)
        #expect(config.intervals == [.m5] && config.common.maxWorkers == 15 && config.common.symbols.map(\.name) == ["ETHUSDT"])
        #expect(config.common.database?.mariadb?.database == "binance")
        #expect(config.planner.explicitStart == 1_672_531_200_000 && config.planner.explicitEnd == 1_675_209_600_000)
        for (args, message) in [
            (["klines", "--period", "15m", "--db-adapter", "mongodb", "--symbols", "BTCUSDT", "--dry-run"], "--db-adapter mongodb is not supported by this build"),
            (["funding", "--symbols", "BTCUSDT", "--dry-run", "--start", "2024-01-01", "--start-date", "2023-01-01"], "--start 2024-01-01 and --start-date 2023-01-01 disagree"),
            (["gaps", "--timeframes", "15m", "--symbols", "BTCUSDT", "--dry-run", "--max-gap-days", "3", "--max-gap-size-days", "700"], "--max-gap-days 3 and --max-gap-size-days 700 disagree"),
        ] {
            // A database that nothing answers for: the flags are refused before any connection.
            let (status, _, errors) = await run(args, env: ["MYSQL_URI": "mysql://u:p@127.0.0.1:9/x"])
            #expect(status == 2 && errors.contains(message), "\(args): \(errors)")
        }
        #expect(throws: ConfigurationError.self) { try ConfigurationReader.adapter(nil, ["DB_ADAPTER": "data_manager"], location: nil) }
        #expect(TelemetryConfiguration(environment: ["ENABLE_OTEL": "false"]).tracesEndpoint == nil)
        #expect(TelemetryConfiguration(environment: ["ENABLE_OTEL": "true"]).tracesEndpoint != nil)
    }

    @Test("ssl-mode and ssl-ca in the URI, with MySQL's names; a CA alone means VERIFY_CA; MYSQL_URI_FILE reads a mounted secret")
    func tlsOptions() throws {
        let full = try DatabaseURI(parsing: "mysql://u:p@db/x?ssl-mode=verify_identity&ssl-ca=%2Fetc%2Fdb%2Fca.pem")
        #expect(full.tlsMode == .verifyIdentity && full.tlsCAFile == "/etc/db/ca.pem")
        #expect(full.description == "mysql://u:***@db:3306/x?ssl-mode=VERIFY_IDENTITY")
        #expect(try DatabaseURI(parsing: "mysql://u:p@db/x?ssl_ca=/ca.pem").tlsMode == .verifyCA)
        #expect(try DatabaseURI(parsing: "mysql://u:p@db/x?ssl-mode=REQUIRED").tlsMode == .required)
        #expect(try DatabaseURI(parsing: "mysql://u:p@db/x?ssl-mode=DISABLED&ssl-ca=/ca.pem").tlsMode == .disabled)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bx-uri-\(UUID().uuidString)")
        try "mysql://u:from-file@db:3307/market\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        var warnings: [String] = []
        let uri = try ConfigurationReader.database(try DatabaseOptions.parse([]), ["MYSQL_URI_FILE": file.path], warnings: &warnings)?.mariadb
        #expect(uri?.password == "from-file" && uri?.port == 3307 && warnings.isEmpty)
    }

    @Test("the database URI parses both schemes and never shows the password")
    func databaseURI() throws {
        let uri = try DatabaseURI(parsing: "mariadb://bx:p%40ss@db.local:3307/market")
        #expect(uri.user == "bx" && uri.password == "p@ss" && uri.host == "db.local" && uri.port == 3307 && uri.database == "market")
        #expect(uri.description == "mysql://bx:***@db.local:3307/market")
        #expect(try DatabaseURI(parsing: "mysql://root@localhost/x").port == 3306)
    }

    @Test("a malformed database URI never shows its password, in any form", arguments: [
        "root:S3cretPW@127.0.0.1:3306/db", "mysql//root:S3cretPW@127.0.0.1:3306/db", "mysql:/root:S3cretPW@127.0.0.1:3306/db",
        "mysql:root:S3cretPW@127.0.0.1/db", "http://root:S3cretPW@127.0.0.1/db", "mysql://root:S3cretPW@",
    ])
    func malformedURIRedacted(uri: String) async {
        for (args, env) in [(["--mysql-uri", uri], [String: String]()), ([], ["MYSQL_URI": uri])] {
            let (status, output, errors) = await run(["klines", "--timeframes", "1m", "--symbols", "BTCUSDT"] + args, env: env)
            #expect(status == 2, "\(errors)")
            #expect(!(output + errors).contains("S3cretPW"), "\(errors)")
        }
    }
}

/// No input crashes the process: every value a user can give is refused with exit 2 naming it, or accepted.
@Suite("Input that used to crash", .timeLimit(.minutes(2)))
struct CrashingInputTests {
    /// A port where nothing listens: a run whose configuration is accepted fails fast there (exit 1), never 2.
    static let deadAPI = "http://127.0.0.1:9"
    static let base = ["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--dry-run", "--api-url", deadAPI,
                       "--request-attempts", "1", "--unit-retries", "0"]

    func run(_ args: [String], env: [String: String] = [:]) async -> (Int32, String) {
        let out = LineSink(), err = LineSink()
        var env = env
        env["OTEL_SDK_DISABLED"] = "true"
        env["BINANCE_KLINES_SOURCE"] = env["BINANCE_KLINES_SOURCE"] ?? "rest"  // REST behaviour; archive tests ask for auto
        let status = await ExtractorCLI.run(arguments: args, environment: env, context: RunContext(output: out, errors: err))
        return (status, err.text)
    }

    @Test("each input from the probe is exit 2 naming the value", arguments: [
        (["--start", "2024-01-01T12:00:½½"], "invalid --start '2024-01-01T12:00:½½'"),
        (["--start", "٢٠٢٤-٠١-٠١"], "invalid --start"),
        (["--start", "2024-01-01T١٢:00"], "invalid --start"),
        (["--start", "0000-01-01"], "before 1970"),
        (["--start", "2999-01-01"], "is in the future"),
        (["--timeframes", ","], "no timeframe in --timeframes ','"),
        (["--lookback-hours", "9223372036854775807"], "--lookback-hours 9223372036854775807: must be a whole number from 1 to 87600"),
        (["--max-catch-up-days", "9223372036854775807"], "--max-catch-up-days 9223372036854775807"),
        (["--max-ban-wait", "9223372036854775807"], "--max-ban-wait 9223372036854775807"),
        (["--max-outage-wait", "9223372036854775807"], "--max-outage-wait 9223372036854775807"),
        (["--db-reconnect-window", "9223372036854775807"], "--db-reconnect-window 9223372036854775807"),
        (["--db-lock-wait-timeout", "9223372036854775807"], "--db-lock-wait-timeout 9223372036854775807"),
        (["--http-timeout", "9223372036854776"], "--http-timeout 9223372036854776"),
        (["--shutdown-timeout", "0"], "--shutdown-timeout 0"),
        (["--max-workers", "100000"], "--max-workers 100000"),
    ])
    func probed(extra: [String], message: String) async {
        // The later flag wins in swift-argument-parser, so `extra` overrides the base's --timeframes.
        let (status, errors) = await run(Self.base + extra)
        #expect(status == 2, "\(errors)")
        #expect(errors.contains(message), "stderr was: \(errors)")
    }

    @Test("funding and trades refuse the same dates", arguments: ["funding", "trades"])
    func otherCommands(command: String) async {
        for (value, message) in [("2024-01-01T12:00:½½", "invalid --start"), ("2999-01-01", "is in the future")] {
            let (status, errors) = await run([command, "--symbols", "BTCUSDT", "--dry-run", "--api-url", Self.deadAPI, "--start", value])
            #expect(status == 2, "\(command) \(value): \(errors)")
            #expect(errors.contains(message), "\(command) \(value): \(errors)")
        }
    }

    @Test("an empty LOG_LEVEL counts as unset")
    func emptyLogLevel() async {
        let (status, errors) = await run(Self.base, env: ["LOG_LEVEL": ""])
        #expect(status != 2, "\(errors)")
        #expect(!errors.contains("invalid log level"))
    }

    /// A small deterministic generator (SplitMix64): the same inputs on every run, so a failure reproduces.
    struct Inputs {
        var generator: SplitMix64
        init(state: UInt64) { generator = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { generator.next() }
        mutating func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }

        static let pieces = ["0", "1", "2", "9", "12", "31", "59", "60", "2024", "1970", "0000", "-", ":", "T", " ", "Z", ".", "+",
                             "½", "٣", "٢٠٢٤", "１", "𝟗", "é", "\u{0}", "\n", "9223372036854775807", "9223372036854775808",
                             "-9223372036854775808", "99999999999999999999", "1e3", "0x10", "∞", "NaN", "🙂"]
        mutating func text() -> String {
            (0..<Int(next() % 8)).map { _ in pick(Self.pieces) }.joined()
        }
    }

    @Test("fuzz: the date parser never crashes, and what it accepts is ASCII and a real time")
    func fuzzDates() {
        var inputs = Inputs(state: 20261202)
        for _ in 0..<20_000 {
            let text = inputs.text()
            guard let ms = UTCCalendar.parse(text) else { continue }
            #expect(text.utf8.allSatisfy { $0 < 0x80 }, "accepted non-ASCII '\(text)'")
            // What it accepts prints back as a time that parses to the same instant.
            #expect(UTCCalendar.parse(UTCCalendar.iso8601(ms).replacingOccurrences(of: ".000Z", with: "")) == ms || ms % 1000 != 0,
                    "'\(text)' -> \(ms)")
        }
        // Every valid form still parses.
        #expect(UTCCalendar.parse("2024-01-01") == 1_704_067_200_000)
        #expect(UTCCalendar.parse("2024-01-01T12:30:15Z") == 1_704_112_215_000)
        #expect(UTCCalendar.parse("1704067200000") == 1_704_067_200_000)
    }

    @Test("times read as what they say: Unix seconds or milliseconds by magnitude, ISO 8601 fractions and offsets", arguments: [
        ("1704067200", 1_704_067_200_000), ("1704067200000", 1_704_067_200_000), ("1704067200123", 1_704_067_200_123),
        ("2024-01-01T00:00:00.000Z", 1_704_067_200_000), ("2024-01-01T00:00:00+00:00", 1_704_067_200_000),
        ("2024-01-01T01:00:00+01:00", 1_704_067_200_000), ("2023-12-31T19:00:00-0500", 1_704_067_200_000),
        ("2024-01-01T05:30+05:30", 1_704_067_200_000), ("2024-01-01T02:00:00+02", 1_704_067_200_000),
        ("2024-01-01T00:00:00.123456789Z", 1_704_067_200_123), ("2024-01-01t00:00:00.5z", 1_704_067_200_500),
        ("2024-01-01 00:00:00,25", 1_704_067_200_250), ("2024-01-31T23:59:00.000Z", 1_706_745_540_000),
    ] as [(String, Int64)])
    func timeForms(text: String, ms: Int64) {
        #expect(UTCCalendar.parse(text) == ms)
    }

    @Test("times that say nothing certain are refused", arguments: [
        "12345678", "2024", "2024-01-01T00:00:00+25:00", "2024-01-01T00:00:00+1:00", "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00.5Z", "2024-01-01+01:00", "2024-01-01T00:00:00.1234567891Z", "2024-01-01T00:00:00+01:60", "2024-01-01T",
    ])
    func timeFormsRefused(text: String) {
        #expect(UTCCalendar.parse(text) == nil)
    }

    @Test("--start 1704067200 (Unix seconds) starts in 2024, not in 1970")
    func epochSecondsStart() throws {
        let config = try ConfigurationReader.klines(try KlinesCommand.parse(["--timeframes", "1h", "--symbols", "BTCUSDT", "--dry-run", "--start", "1704067200",
                                                                 "--end", "2024-01-02T00:00:00.000Z"]),
                                        environment: [:], now: 1_764_633_600_000)
        #expect(config.planner.explicitStart == 1_704_067_200_000)
        #expect(config.planner.explicitEnd == 1_704_153_600_000)
    }

    @Test("fuzz: any value of any numeric or date option is accepted or refused with a message naming it, never a crash")
    func fuzzArguments() throws {
        let options = ConfigurationReader.numericRanges.keys.sorted() + ["--start", "--end", "--timeframes", "--symbols", "--market", "--page-limit"]
        var inputs = Inputs(state: 42)
        var refused = 0
        for _ in 0..<400 {
            let option = inputs.pick(options)
            let value = inputs.next() % 3 == 0 ? String(Int64(bitPattern: inputs.next())) : inputs.text()
            let args = ["--timeframes", "1m", "--symbols", "BTCUSDT", "--dry-run", option, value]
            // The same two steps `ExtractorCLI.run` takes: the parser, then the resolution of every value.
            guard let command = try? KlinesCommand.parse(args) else { refused += 1; continue }
            do {
                _ = try ConfigurationReader.klines(command, environment: [:], now: 1_764_633_600_000)
            } catch {
                refused += 1
                #expect(error.message.contains(option) || error.message.contains(value) || option == "--symbols" || option == "--timeframes",
                        "\(option) '\(value)': \(error.message)")
            }
        }
        #expect(refused > 150, "the generator should produce mostly bad values")
    }

    @Test("a refused value ends the real command with exit 2", arguments: [("--lookback-hours", "-9223372036854775808"), ("--start", "𝟗𝟗")])
    func refusedIsExit2(option: String, value: String) async {
        let (status, errors) = await run(Self.base + [option, value])
        #expect(status == 2, "\(errors)")
    }
}

@Suite("Contract families (PAIR_* in --symbols)")
struct ContractFamilyTests {
    static func info(_ symbol: String, pair: String? = nil) -> ExchangeInfo.SymbolInfo {
        let json = "{\"symbol\":\"\(symbol)\"" + (pair.map { ",\"pair\":\"\($0)\"" } ?? "") + "}"
        return try! JSONDecoder().decode(ExchangeInfo.SymbolInfo.self, from: Data(json.utf8))
    }

    @Test("quarterly deliveries fall on the last Friday of the quarter's month, at 08:00 UTC, and name their contracts")
    func calendar() throws {
        let around = try #require(QuarterlyDelivery.around(UTCCalendar.parse("2024-03-01T12:00:00Z")!))
        #expect(around.last == UTCCalendar.parse("2023-12-29T08:00:00Z") && around.current == UTCCalendar.parse("2024-03-29T08:00:00Z"))
        #expect(around.next == UTCCalendar.parse("2024-06-28T08:00:00Z"))
        #expect(QuarterlyDelivery.symbol(pair: "BTCUSD", delivery: around.current) == "BTCUSD_240329")
        #expect(try Symbol(validating: "BTCUSD_240329").deliveryTime == around.current)
        #expect(try Symbol(validating: "BTCUSD_PERP").deliveryTime == nil && Symbol(validating: "BTCUSD_240230").deliveryTime == nil)
    }

    @Test("a family is the pair's listed contracts, plus the quarter that delivered in the last week")
    func expansion() throws {
        let listed = [Self.info("BTCUSD_PERP", pair: "BTCUSD"), Self.info("BTCUSD_240628", pair: "BTCUSD"), Self.info("BTCUSD_240927", pair: "BTCUSD"),
                      Self.info("ETHUSD_PERP", pair: "ETHUSD"), Self.info("BTCUSDT_240628")]
        let justAfter = UTCCalendar.parse("2024-03-31T00:00:00Z")!
        let expanded = ContractFamilies.expand([try Symbol(validating: "BTCUSD")], listed: listed, now: justAfter)
        #expect(expanded.symbols.map(\.name) == ["BTCUSD_240329", "BTCUSD_240628", "BTCUSD_240927", "BTCUSD_PERP"])
        let later = ContractFamilies.expand([try Symbol(validating: "BTCUSD")], listed: listed, now: justAfter + 10 * 86_400_000)
        #expect(!later.symbols.map(\.name).contains("BTCUSD_240329"), "delivered more than a week ago: complete, no longer followed")
        // USD-M gives no pair here: the name's prefix decides; the perpetual BTCUSDT is not a suffixed contract.
        #expect(ContractFamilies.expand([try Symbol(validating: "BTCUSDT")], listed: listed, now: justAfter + 10 * 86_400_000).symbols.map(\.name) == ["BTCUSDT_240628"])
        #expect(ContractFamilies.expand([try Symbol(validating: "XRPUSD")], listed: listed, now: justAfter).unmatched.map(\.name) == ["XRPUSD"])
    }

    @Test("a family on spot, with --shard, or for metrics is refused by name", arguments: [
        (["klines", "--market", "spot", "--timeframes", "1h", "--symbols", "BTCUSD_*", "--dry-run"], "use it with --market futures or coinm"),
        (["klines", "--market", "coinm", "--timeframes", "1h", "--symbols", "BTCUSD_*", "--shard", "0/2", "--dry-run"], "with --shard"),
        (["metrics", "--symbols", "BTCUSDT_*", "--dry-run"], "not a contract family"),
        (["klines", "--market", "coinm", "--timeframes", "1h", "--symbols", "btc_*", "--dry-run"], "invalid contract family"),
    ])
    func refused(args: [String], message: String) async {
        let out = LineSink(), err = LineSink()
        let status = await ExtractorCLI.run(arguments: args, environment: ["OTEL_SDK_DISABLED": "true"],
                                            context: RunContext(clock: ManualClock(now: 1_709_294_400_000), output: out, errors: err))
        #expect(status == 2 && err.text.contains(message), "\(err.text)")
    }
}
