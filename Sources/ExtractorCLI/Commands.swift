import ArgumentParser
import BuildInfo

/// `binance-extractor`: the root command. Parsing and `--help` only; `ExtractorCLI.run` executes.
struct RootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "binance-extractor",
        abstract: "Keeps a MariaDB or PostgreSQL copy of Binance market history complete, exact and current.",
        discussion: """
        Every option falls back to an environment variable, then to a default, as shown in each command's help.
        Exit status: 0 every unit succeeded; 1 some unit failed or the run was interrupted (run again to complete);
        2 bad configuration or input (nothing was written).
        """,
        version: BuildInfo.version,
        subcommands: [KlinesCommand.self, GapsCommand.self, FundingCommand.self, TradesCommand.self, MetricsCommand.self, CoverageCommand.self,
                      MigrateCommand.self])
}

/// Options every command that talks to the database shares.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: ArgumentHelp(
        "The database: mysql://user:password@host:3306/database (or mariadb://) for MariaDB/MySQL, postgresql://user:password@host:5432/database (or postgres://) for PostgreSQL. Env: DATABASE_URL or MYSQL_URI (or their _FILE forms).",
        valueName: "url"))
    var databaseURL: String?

    @Option(name: .customLong("mysql-uri"), help: ArgumentHelp(
        "MariaDB to write to: mysql://user:password@host:3306/database (or mariadb://). Env: MYSQL_URI. (--database-url takes either store.)",
        valueName: "uri"))
    var mysqlURI: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. Env: LOG_LEVEL. Default: info.")
    var logLevel: String?

    /// petrosa-binance-data-extractor's name for `--mysql-uri`.
    @Option(name: .customLong("db-uri"), help: .hidden)
    var dbURI: String?

    /// petrosa-binance-data-extractor's store switch (its CronJobs pass `--db-adapter=mysql`): as `DB_ADAPTER`.
    @Option(name: .customLong("db-adapter"), help: .hidden)
    var dbAdapter: String?
}

/// Options every extraction command shares.
struct CommonOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Comma-separated symbols, e.g. BTCUSDT,ETHUSDT. Env: DEFAULT_SYMBOLS.", valueName: "list"))
    var symbols: String?

    /// petrosa-binance-data-extractor's name for one symbol.
    @Option(name: .customLong("symbol"), help: .hidden)
    var symbol: String?

    @Option(help: "futures (USD-M), coinm (COIN-M: perpetuals such as BTCUSD_PERP and delivery contracts such as BTCUSD_250926) or spot. Default: futures.")
    var market: String?

    @Flag(name: .customLong("dry-run"), help: "Read the database (if configured), fetch and validate, report what would be written; write nothing.")
    var dryRun = false

    @Option(name: .customLong("api-url"), help: ArgumentHelp(
        "Binance REST base URL. Env: BINANCE_FUTURES_API_URL (default https://fapi.binance.com), BINANCE_COINM_API_URL (default https://dapi.binance.com) or BINANCE_API_URL (spot, default https://api.binance.com).",
        valueName: "url"))
    var apiURL: String?

    @Option(name: .customLong("batch-size"), help: "Rows per database write. Env: DB_BATCH_SIZE. Default: 2000.")
    var batchSize: Int?

    @Option(name: .customLong("max-workers"), help: "Units (symbol x timeframe) fetched at once. Env: MAX_WORKERS. Default: 4.")
    var maxWorkers: Int?

    /// petrosa-binance-data-extractor's name for `--max-workers`.
    @Option(name: .customLong("parallel"), help: .hidden)
    var parallel: Int?

    @Option(name: .customLong("unit-retries"), help: "Retries of a failed unit, with exponential backoff and jitter. Default: 2.")
    var unitRetries: Int?

    @Option(name: .customLong("request-attempts"), help: "Attempts per Binance request on transient errors. Default: 5.")
    var requestAttempts: Int?

    @Option(name: .customLong("http-timeout"), help: "Seconds a Binance request may take in all. Default: 30.")
    var httpTimeout: Int?

    @Option(name: .customLong("max-ban-wait"), help: "Seconds a Binance IP ban (HTTP 418) may hold the run; a longer ban ends it with exit 1. Default: 300.")
    var maxBanWait: Int?

    @Option(name: .customLong("max-outage-wait"), help: "Seconds the run waits for a failing exchange (circuit breaker open) before it stops. Default: 120.")
    var maxOutageWait: Int?

    @Option(name: .customLong("shutdown-timeout"), help: "Seconds between SIGTERM/SIGINT and exit at the latest (flushing what was fetched). Env: SHUTDOWN_TIMEOUT. Default: 20.")
    var shutdownTimeout: Int?

    @Option(name: .customLong("db-lock-wait-timeout"), help: "Seconds a statement waits for a lock another session holds before it is run again: MariaDB's innodb_lock_wait_timeout, PostgreSQL's lock_timeout. Default: the server's.")
    var dbLockWaitTimeout: Int?

    @Option(name: .customLong("db-reconnect-window"), help: "Seconds to keep reconnecting to a database that went away mid-run. Default: 30.")
    var dbReconnectWindow: Int?

    @Flag(name: .customLong("insecure-skip-tls-verify"), help: "Do not verify Binance's TLS certificate (test endpoints only; warns on every run). Env: BINANCE_INSECURE_SKIP_TLS_VERIFY=true.")
    var insecureSkipTLSVerify = false

    @Option(help: ArgumentHelp("This process's share of the symbols, i/n (0-based): every n-th symbol from the i-th. Env: SHARD, or JOB_COMPLETION_INDEX with SHARD_COUNT (Kubernetes Indexed Jobs).", valueName: "i/n"))
    var shard: String?

    @Option(name: .customLong("weight-share"), help: "Fraction of the IP's request-weight budget this process may spend (0 < share <= 1). Env: WEIGHT_SHARE. Default: 1, or 1/n with --shard i/n.")
    var weightShare: Double?

    @Option(help: "Summary format: table, json (one line) or auto (a table on a terminal, JSON otherwise). Default: auto.")
    var summary: String?

    @OptionGroup var database: DatabaseOptions
}

/// `binance-extractor klines`.
struct KlinesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "klines",
        abstract: "Fetch klines (candlesticks) from Binance into the database, resuming from the last stored candle.",
        discussion: """
        Without --start, each market x symbol x timeframe resumes from its last stored candle, re-reading an overlap \
        (the last stored candle and at least one hour before it); with nothing stored it starts LOOKBACK_HOURS ago \
        (or at the symbol's first candle with --from-listing). A run far behind moves at most --max-catch-up-days \
        past the last stored candle; the next run continues from there. The still-open candle is never stored. \
        Futures tables are klines_m1, klines_m5, ..., klines_d1, klines_mo1 (1M); spot tables are spot_klines_*. \
        With --series mark, index or premium: mark price, index price (by pair: the name given in --symbols, a contract \
        standing for its pair) and premium index candles, into mark_klines_*, index_klines_* and premium_klines_* \
        (coinm_mark_klines_* ... on COIN-M): open, high, low, close and Binance's count of basic data.
        """)

    @Option(help: ArgumentHelp("Comma-separated Binance intervals: 1s (spot), 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M. Required.", valueName: "list"))
    var timeframes: String?

    /// petrosa-binance-data-extractor's name for one timeframe (`--period 15m`).
    @Option(name: .customLong("period"), help: .hidden)
    var period: String?

    @OptionGroup var series: SeriesOption

    @OptionGroup var range: BackfillRange

    @Flag(name: .customLong("from-listing"), help: "A symbol with nothing stored starts at its first candle instead of LOOKBACK_HOURS ago.")
    var fromListing = false

    @Option(name: .customLong("lookback-hours"), help: "Where a unit with nothing stored starts. Env: LOOKBACK_HOURS. Default: 24.")
    var lookbackHours: Int?

    @Option(name: .customLong("max-catch-up-days"), help: "How far past the last stored candle one run goes. Default: 7.")
    var maxCatchUpDays: Int?

    @Option(name: .customLong("page-limit"), help: "Klines per request. Default: the size buying the most klines per weight (futures 499, spot 1000).")
    var pageLimit: Int?

    @OptionGroup var archive: ArchiveOptions

    @OptionGroup var common: CommonOptions
}

/// `--series` of `klines` and `gaps`: which candles.
struct SeriesOption: ParsableArguments {
    @Option(name: .customLong("series"), help: ArgumentHelp("""
        Which candles, comma-separated: trade (Binance's klines), mark (mark price), index (index price, by pair) or premium \
        (premium index); the last three on futures only (USD-M and COIN-M). Env: BINANCE_KLINES_SERIES. Default: trade.
        """, valueName: "list"))
    var series: String?
}

/// `--start` / `--end` of `klines`, `funding` and `trades`: a range fetched whatever is stored.
struct BackfillRange: ParsableArguments {
    @Option(help: ArgumentHelp("Backfill from this time instead of resuming, also below what is stored: a UTC date or time (2024-01-01, 2024-01-01T12:00), ISO 8601 with fractions and an offset (2024-01-01T00:00:00.000Z, 2024-01-01T01:00:00+01:00), or Unix seconds or milliseconds (told apart by magnitude).", valueName: "date"))
    var start: String?

    @Option(help: ArgumentHelp("With --start: stop before this time (exclusive), in the same forms. Default: now.", valueName: "date"))
    var end: String?

    /// petrosa-binance-data-extractor's names for `--start` and `--end`.
    @Option(name: .customLong("start-date"), help: .hidden)
    var startDate: String?

    @Option(name: .customLong("end-date"), help: .hidden)
    var endDate: String?
}

/// Where `klines`, `gaps` and `trades` read history from.
struct ArchiveOptions: ParsableArguments {
    @Option(name: .customLong("source"), help: """
        Where history comes from: auto (whole closed months and days from Binance's public archives, the rest from REST), rest, or archive (files only). Env: BINANCE_KLINES_SOURCE (klines, gaps), BINANCE_TRADES_SOURCE (trades), BINANCE_METRICS_SOURCE (metrics). Default: auto.
        """)
    var source: String?

    @Option(name: .customLong("archive-url"), help: "Base URL of the archives. Env: BINANCE_ARCHIVE_URL. Default: https://data.binance.vision.")
    var archiveURL: String?
}

/// `binance-extractor gaps`.
struct GapsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gaps",
        abstract: "Find holes in stored klines and fill them through the same pipeline.",
        discussion: """
        Holes are found by the database (window functions over (symbol, open_time)), in every table named by --timeframes. A hole Binance has no candles for \
        (an exchange outage, before listing, after delisting) is recorded in kline_gaps_confirmed once asked, and \
        not asked again unless --recheck. --dry-run lists the holes and fetches nothing.
        """)

    @Option(help: ArgumentHelp("Comma-separated Binance intervals whose tables are checked, e.g. 5m,15m,1h. Required.", valueName: "list"))
    var timeframes: String?

    /// The earlier spelling, for one timeframe; kept working.
    @Option(name: .customLong("timeframe"), help: ArgumentHelp("Same as --timeframes.", visibility: .hidden))
    var timeframe: String?

    /// petrosa-binance-data-extractor's name for one timeframe.
    @Option(name: .customLong("period"), help: .hidden)
    var period: String?

    @Option(help: ArgumentHelp("Only look at candles from this UTC date on (a hole before the first candle after it counts too).", valueName: "date"))
    var since: String?

    @Option(name: .customLong("max-gap-days"), help: "Skip holes longer than this many days, with a warning.")
    var maxGapDays: Int?

    /// petrosa-binance-data-extractor's gap filler's name for `--max-gap-days`.
    @Option(name: .customLong("max-gap-size-days"), help: .hidden)
    var maxGapSizeDays: Int?

    @Flag(help: "Ask Binance again for holes already confirmed empty.")
    var recheck = false

    @Flag(help: "Check futures_metrics (open interest and ratios, every 5 minutes) instead of kline tables; no --timeframes.")
    var metrics = false

    @OptionGroup var series: SeriesOption

    @OptionGroup var archive: ArchiveOptions

    @OptionGroup var common: CommonOptions
}

/// `binance-extractor funding`.
struct FundingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "funding",
        abstract: "Fetch USD-M funding rates into funding_rates, from the last stored funding time.")

    @OptionGroup var range: BackfillRange

    @Option(name: .customLong("lookback-hours"), help: "Where a symbol with nothing stored starts. Env: LOOKBACK_HOURS. Default: 24.")
    var lookbackHours: Int?

    @OptionGroup var common: CommonOptions
}

/// `binance-extractor metrics`.
struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Fetch USD-M open interest and trader long/short ratios (every 5 minutes) into futures_metrics.",
        discussion: """
        History comes from the daily metrics files of Binance's public archives (data/futures/um/daily/metrics), the days \
        no file has yet from /futures/data/openInterestHist, topLongShortAccountRatio, topLongShortPositionRatio, \
        globalLongShortAccountRatio and takerlongshortRatio (period 5m), which keep only the last 30 days and have a limit \
        of their own (1000 requests per 5 minutes per IP, weight 0). Without --start, each symbol resumes from its newest \
        row (re-reading an hour), or starts LOOKBACK_HOURS ago.
        """)

    @OptionGroup var range: BackfillRange

    @Option(name: .customLong("lookback-hours"), help: "Where a symbol with nothing stored starts. Env: LOOKBACK_HOURS. Default: 24.")
    var lookbackHours: Int?

    @OptionGroup var archive: ArchiveOptions

    @OptionGroup var common: CommonOptions
}

/// `binance-extractor trades`.
struct TradesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trades",
        abstract: "Fetch aggregate trades into agg_trades / spot_agg_trades, from the last stored aggregate trade id.")

    @OptionGroup var range: BackfillRange

    @Option(name: .customLong("lookback-hours"), help: "Where a symbol with nothing stored starts. Env: LOOKBACK_HOURS. Default: 24.")
    var lookbackHours: Int?

    @Option(name: .customLong("max-pages"), help: "Pages of 1000 trades per symbol and run at most; the next run continues. Default: 1000.")
    var maxPages: Int?

    @OptionGroup var archive: ArchiveOptions

    @OptionGroup var common: CommonOptions
}

/// `binance-extractor coverage`.
struct CoverageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coverage",
        abstract: "Show what is stored: per table and symbol, first and last time, rows, rows expected, holes and outages.",
        discussion: """
        Reads the database only (nothing is fetched or written). For kline tables, rows expected are the candles \
        between the first and last stored one, holes are found by the same window query as `gaps`, outages are holes \
        Binance itself has no candles for (kline_gaps_confirmed), and behind counts the closed candles after the last \
        stored one. For aggregate trades, ids follow each other: a jump in ids is a hole. funding_rates shows its span \
        and rows (Binance's funding intervals differ by symbol). Without --timeframes, funding and trades tables are \
        listed too. Exit status 0 whatever the coverage; `complete` in the JSON says whether a series lacks rows.
        """)

    @Option(help: "Only this market's tables (futures, coinm or spot). Default: all.")
    var market: String?

    @Option(help: ArgumentHelp("Only these intervals' kline tables (comma-separated). Default: every kline table that exists, and the funding and trades tables.", valueName: "list"))
    var timeframes: String?

    @Option(help: ArgumentHelp("Only these symbols (comma-separated). Default: every symbol stored.", valueName: "list"))
    var symbols: String?

    @Option(help: "table, json (one line) or auto (a table on a terminal, JSON otherwise). Default: auto.")
    var format: String?

    @OptionGroup var database: DatabaseOptions
}

/// `binance-extractor migrate`.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create the kline tables and upgrade older ones (idempotent).")

    @Option(help: "Only this market's tables (futures, coinm or spot). Default: all.")
    var market: String?

    @Option(help: ArgumentHelp("Only these intervals' tables (comma-separated). Default: all.", valueName: "list"))
    var timeframes: String?

    @OptionGroup var database: DatabaseOptions
}
