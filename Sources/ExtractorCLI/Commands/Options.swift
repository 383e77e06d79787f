import ArgumentParser

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

    @Option(name: .customLong("spool-dir"), help: """
        Folder where archive downloads are written while they are read (a month of a busy symbol's trades is over a gigabyte; the disk must hold the largest file, twice with files in flight). Env: BINANCE_SPOOL_DIR. Default: TMPDIR, else /tmp.
        """)
    var spoolDirectory: String?
}
