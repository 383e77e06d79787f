import ExtractorCLI
import Storage
import Telemetry
import Testing

@Suite("Command line and configuration", .timeLimit(.minutes(2)))
struct ConfigurationTests {
    func run(_ args: [String], env: [String: String] = [:]) async -> (Int32, String, String) {
        let out = LineSink(), err = LineSink()
        var env = env
        env["OTEL_SDK_DISABLED"] = "true"
        let status = await ExtractorCLI.run(arguments: args, environment: env, context: RunContext(output: out, errors: err))
        return (status, out.text, err.text)
    }

    @Test("bad input exits 2 with a message naming the value", arguments: [
        (["klines", "--timeframes", "7m", "--symbols", "BTCUSDT", "--dry-run"], "unknown timeframe '7m'"),
        (["klines", "--timeframes", "1m", "--symbols", "btc-usdt!", "--dry-run"], "invalid symbol 'btc-usdt!'"),
        (["klines", "--timeframes", "1m", "--symbols", "BTCUSDT", "--mysql-uri", "postgres://u:secret@h/db"], "scheme 'postgres'"),
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

    @Test("the database URI parses both schemes and never shows the password")
    func databaseURI() throws {
        let uri = try DatabaseURI(parsing: "mariadb://bx:p%40ss@db.local:3307/market")
        #expect(uri.user == "bx" && uri.password == "p@ss" && uri.host == "db.local" && uri.port == 3307 && uri.database == "market")
        #expect(uri.description == "mysql://bx:***@db.local:3307/market")
        #expect(try DatabaseURI(parsing: "mysql://root@localhost/x").port == 3306)
        #expect(DatabaseURI.redact("mysql://u:hunter2@h/db") == "mysql://u:***@h/db")
    }
}
