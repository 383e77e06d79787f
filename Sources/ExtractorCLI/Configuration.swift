import Foundation
import HTTPTransport
import BinanceAPI
import Clocks
import Logging
import Pipeline
import StoreKit
import Telemetry

/// A configuration value that cannot be used; the message names the value and says what to do. Exit status 2.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What every extraction command needs, resolved once (flags > environment > defaults) and validated.
public struct CommonConfiguration: Sendable {
    public var market: Market
    public var symbols: [Symbol]
    /// `PAIR_*` in `--symbols` (futures and COIN-M): every contract of the pair Binance lists when the run starts, and
    /// the quarterly contract that delivered in the last week (see `JobRunner`).
    public var families: [Symbol] = []
    public var dryRun: Bool
    public var apiURL: String
    public var database: DatabaseLocation?
    public var batchSize: Int
    public var maxWorkers: Int
    public var unitRetries: Int
    public var requestAttempts: Int
    public var httpTimeoutSeconds: Int
    public var logLevel: Logger.Level
    /// nil: a table on a terminal, JSON otherwise.
    public var summaryAsTable: Bool?
    public var maxBanWaitSeconds: Int
    public var maxOutageWaitSeconds: Int
    public var shutdownTimeoutSeconds: Int
    public var dbLockWaitTimeoutSeconds: Int?
    public var dbReconnectWindowSeconds: Int
    public var verifyTLS: Bool
    /// This process's share of the IP's weight budget.
    public var weightShare: Double
    /// `(index, count)` when sharded.
    public var shard: (index: Int, count: Int)?
    /// Said in the run's log once it starts (e.g. a password on the command line).
    public var warnings: [String] = []
}

/// A `klines` run.
public struct KlinesConfiguration: Sendable {
    public var common: CommonConfiguration
    public var intervals: [KlineInterval]
    /// `--series`: trade klines, or the USD-M price series.
    public var series: [PriceSeries] = [.trade]
    public var planner: RangePlanner
    public var pageLimit: Int?
    public var source: SourceMode = .auto
    public var archive = ArchiveSettings()
}

enum ConfigurationReader {
    static func logLevel(_ flag: String?, _ env: [String: String]) throws(ConfigurationError) -> Logger.Level {
        // An empty variable counts as unset, as every other one does.
        let text = flag ?? env["LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "info"
        guard let level = level(named: text) else {
            throw ConfigurationError("invalid log level '\(text)' (--log-level or LOG_LEVEL): use trace, debug, info, notice, warning (warn), error or critical (fatal)")
        }
        return level
    }

    /// `LOG_FORMAT` (json or text, any case); unset or empty: text on a terminal, JSON otherwise.
    static func logFormat(_ env: [String: String], terminal: Bool) throws(ConfigurationError) -> LogFormat {
        guard let text = env["LOG_FORMAT"], !text.trimmingCharacters(in: .whitespaces).isEmpty else { return terminal ? .text : .json }
        guard let format = LogFormat(rawValue: text.trimmingCharacters(in: .whitespaces).lowercased()) else {
            throw ConfigurationError("invalid LOG_FORMAT='\(text)': use json (one JSON object per line) or text (lines for a terminal), or unset it")
        }
        return format
    }

    /// A level in any case, with the names Python's logging uses too (`WARN`, `WARNING`, `FATAL`, `CRITICAL`), so a
    /// petrosa-binance-data-extractor ConfigMap's `LOG_LEVEL` works unchanged.
    static func level(named text: String) -> Logger.Level? {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "warn": .warning
        case "fatal": .critical
        case let name: Logger.Level(rawValue: name)
        }
    }

    static func market(_ flag: String?) throws(ConfigurationError) -> Market {
        let text = flag ?? "futures"
        guard let market = Market(rawValue: text.lowercased()) else {
            throw ConfigurationError("invalid market '\(text)' (--market): use futures (USD-M), coinm (COIN-M) or spot")
        }
        return market
    }

    static func intervals(_ text: String?, market: Market?) throws(ConfigurationError) -> [KlineInterval] {
        guard let text, !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ConfigurationError("no timeframes given: pass --timeframes, e.g. --timeframes 15m,1h")
        }
        var out: [KlineInterval] = []
        for part in text.split(separator: ",") {
            let name = part.trimmingCharacters(in: .whitespaces)
            guard let interval = KlineInterval(binanceName: name) else {
                throw ConfigurationError("unknown timeframe '\(name)' (--timeframes): use one of \(KlineInterval.allNames)")
            }
            if let market, !interval.isAvailable(on: market) {
                throw ConfigurationError("timeframe '\(name)' is not offered on \(market.rawValue) (1s is spot only)")
            }
            if !out.contains(interval) { out.append(interval) }
        }
        guard !out.isEmpty else {
            throw ConfigurationError("no timeframe in --timeframes '\(text)': name at least one, e.g. --timeframes 15m,1h")
        }
        return out
    }

    /// Every numeric option's accepted values, documented in the README ("Numeric options"): wide enough for any real
    /// use, narrow enough that no value turned into milliseconds (or multiplied by another) can overflow.
    static let numericRanges: [String: ClosedRange<Int>] = [
        "--batch-size": 1...100_000, "--max-workers": 1...256, "--unit-retries": 0...100, "--request-attempts": 1...100,
        "--http-timeout": 1...3_600, "--max-ban-wait": 0...86_400, "--max-outage-wait": 1...86_400,
        "--shutdown-timeout": 1...3_600, "--db-lock-wait-timeout": 1...86_400, "--db-reconnect-window": 0...86_400,
        "--lookback-hours": 1...87_600, "--max-catch-up-days": 1...3_650, "--max-gap-days": 1...36_500,
        "--max-pages": 1...1_000_000, "--health-port": 1...65_535,
    ]

    /// A whole number from the flag, else the environment variable `name`, else `value`, within the option's range.
    static func positive(_ flag: Int?, env name: String?, _ env: [String: String], default value: Int,
                         option: String) throws(ConfigurationError) -> Int {
        let range = numericRanges[option] ?? 1...Int.max
        let expected = "must be a whole number from \(range.lowerBound) to \(range.upperBound)"
        if let flag {
            guard range.contains(flag) else { throw ConfigurationError("invalid \(option) \(flag): \(expected)") }
            return flag
        }
        if let name, let text = env[name], !text.isEmpty {
            guard let n = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(n) else {
                throw ConfigurationError("invalid \(name)='\(text)' (or \(option)): \(expected)")
            }
            return n
        }
        return value
    }

    static func date(_ text: String?, option: String) throws(ConfigurationError) -> Int64? {
        guard let text else { return nil }
        guard let ms = UTCCalendar.parse(text) else {
            throw ConfigurationError("invalid \(option) '\(text)': use a UTC date or time (2024-01-01, 2024-01-01T12:00:00), ISO 8601 with fractions and an offset (2024-01-01T12:00:00.000Z, 2024-01-01T13:00:00+01:00), or Unix seconds or milliseconds (1704067200, 1704067200000)")
        }
        // Binance's times are Unix milliseconds; it answers -1130 for a negative startTime.
        guard ms >= 0 else {
            throw ConfigurationError("invalid \(option) '\(text)': dates before 1970-01-01 are not Unix times; Binance's history starts in 2017")
        }
        return ms
    }

    /// `--start`: a date, and one in the past (nothing has traded in the future, so a run would do nothing).
    /// `gaps --since` likewise.
    static func start(_ text: String?, now: Int64, option: String = "--start") throws(ConfigurationError) -> Int64? {
        guard let start = try date(text, option: option) else { return nil }
        guard start < now else {
            throw ConfigurationError("\(option) \(text ?? "") is in the future (now is \(UTCCalendar.iso8601(now))): nothing has traded there yet; give a past date")
        }
        return start
    }

    static func url(_ text: String, source: String) throws(ConfigurationError) -> String {
        let lower = text.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://"), text.count > 8, !text.contains(" ") else {
            // Shown without credentials or query (either may hold a secret), and never at any length.
            let shown = String(URLCredentials.redacted(text).prefix { $0 != "?" }.prefix(120))
            throw ConfigurationError("invalid Binance URL '\(shown)' (\(source)): expected https://host[:port]")
        }
        return text
    }

    static func common(_ c: CommonOptions, environment env: [String: String], databaseRequired: Bool) throws(ConfigurationError) -> CommonConfiguration {
        let logLevel = try logLevel(c.database.logLevel, env)
        let summaryAsTable: Bool?
        switch c.summary?.lowercased() {
        case nil, "auto": summaryAsTable = nil
        case "table": summaryAsTable = true
        case "json": summaryAsTable = false
        default: throw ConfigurationError("invalid --summary '\(c.summary!)': use table, json or auto")
        }
        let market = try market(c.market)
        let symbolText = try alias(c.symbols, c.symbol, option: "--symbols", alias: "--symbol") ?? env["DEFAULT_SYMBOLS"] ?? ""
        // `BTCUSD_*`: a pair's contracts, whatever quarter it is.
        var families: [Symbol] = [], named: [Substring] = []
        let entries = symbolText.split(separator: ",", omittingEmptySubsequences: false)
        if entries.count > 1, let empty = entries.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            // `BTCUSDT,,ETHUSDT` is a typo more often than a wish: a symbol may have been lost between the commas.
            let source = c.symbols != nil || c.symbol != nil ? "--symbols" : "DEFAULT_SYMBOLS"
            throw ConfigurationError("\(source) '\(symbolText)' has an empty entry (entry \(empty + 1)): remove the extra comma, or name the symbol that belongs there")
        }
        for part in entries where !part.trimmingCharacters(in: .whitespaces).isEmpty {
            let token = part.trimmingCharacters(in: .whitespaces)
            guard token.hasSuffix("_*") else { named.append(part); continue }
            guard market != .spot else {
                throw ConfigurationError("'\(token)' in --symbols names a pair's futures contracts: use it with --market futures or coinm, or list spot symbols")
            }
            do { families.append(try Symbol(validating: String(token.dropLast(2)))) } catch {
                throw ConfigurationError("invalid contract family '\(token)': write the pair then _*, e.g. BTCUSD_*")
            }
        }
        var symbols: [Symbol]
        do { symbols = try Symbol.parseList(named.joined(separator: ",")) } catch { throw ConfigurationError(error.description) }
        guard !symbols.isEmpty || !families.isEmpty else {
            throw ConfigurationError("no symbols given: pass --symbols BTCUSDT,ETHUSDT or set DEFAULT_SYMBOLS")
        }
        let shard = try shard(c.shard, env)
        if shard != nil && !families.isEmpty {
            throw ConfigurationError("--symbols \(families.map { $0.name + "_*" }.joined(separator: ",")) with --shard: each pod would take the whole family; list the contracts instead")
        }
        if let shard { symbols = symbols.enumerated().filter { $0.offset % shard.count == shard.index }.map(\.element) }
        let weightShare: Double
        if let share = c.weightShare ?? env["WEIGHT_SHARE"].flatMap({ $0.isEmpty ? nil : Double($0) }) {
            guard share > 0, share <= 1 else { throw ConfigurationError("invalid weight share \(share) (--weight-share or WEIGHT_SHARE): use a fraction above 0 and at most 1") }
            weightShare = share
        } else if let text = env["WEIGHT_SHARE"], !text.isEmpty {
            throw ConfigurationError("invalid WEIGHT_SHARE='\(text)': use a fraction above 0 and at most 1, e.g. 0.25")
        } else {
            weightShare = shard.map { 1 / Double($0.count) } ?? 1
        }
        let envURL = switch market {
        case .futures: "BINANCE_FUTURES_API_URL"
        case .coinm: "BINANCE_COINM_API_URL"
        case .spot: "BINANCE_API_URL"
        }
        let apiURL = try url(c.apiURL ?? env[envURL] ?? market.defaultBaseURL, source: c.apiURL != nil ? "--api-url" : envURL)
        var warnings: [String] = []
        let database = try database(c.database, env, warnings: &warnings)
        if database == nil && databaseRequired {
            throw ConfigurationError("no database configured: set DATABASE_URL or MYSQL_URI (mysql://user:password@host:3306/database, postgresql://…) or pass --database-url"
                                     + (c.dryRun ? "" : "; use --dry-run to fetch without writing"))
        }
        var configuration = CommonConfiguration(
            market: market, symbols: symbols, dryRun: c.dryRun, apiURL: apiURL, database: database,
            batchSize: try positive(c.batchSize, env: "DB_BATCH_SIZE", env, default: 2000, option: "--batch-size"),
            maxWorkers: try positive(try alias(c.maxWorkers, c.parallel, option: "--max-workers", alias: "--parallel"),
                                     env: "MAX_WORKERS", env, default: 4, option: "--max-workers"),
            unitRetries: try positive(c.unitRetries, env: nil, env, default: 2, option: "--unit-retries"),
            requestAttempts: try positive(c.requestAttempts, env: nil, env, default: 5, option: "--request-attempts"),
            httpTimeoutSeconds: try positive(c.httpTimeout, env: nil, env, default: 30, option: "--http-timeout"),
            logLevel: logLevel, summaryAsTable: summaryAsTable,
            maxBanWaitSeconds: try positive(c.maxBanWait, env: nil, env, default: 300, option: "--max-ban-wait"),
            maxOutageWaitSeconds: try positive(c.maxOutageWait, env: nil, env, default: 120, option: "--max-outage-wait"),
            shutdownTimeoutSeconds: try positive(c.shutdownTimeout, env: "SHUTDOWN_TIMEOUT", env, default: 20, option: "--shutdown-timeout"),
            dbLockWaitTimeoutSeconds: c.dbLockWaitTimeout == nil ? nil
                : try positive(c.dbLockWaitTimeout, env: nil, env, default: 50, option: "--db-lock-wait-timeout"),
            dbReconnectWindowSeconds: try positive(c.dbReconnectWindow, env: nil, env, default: 30, option: "--db-reconnect-window"),
            verifyTLS: !(c.insecureSkipTLSVerify || ["1", "true", "yes"].contains(env["BINANCE_INSECURE_SKIP_TLS_VERIFY"]?.lowercased() ?? "")),
            weightShare: weightShare, shard: shard, warnings: warnings)
        configuration.families = families
        return configuration
    }

    /// A flag and its hidden alias (petrosa-binance-data-extractor's name for it): either, or both when equal.
    static func alias<Value: Equatable>(_ value: Value?, _ aliasValue: Value?, option: String, alias: String) throws(ConfigurationError) -> Value? {
        if let value, let aliasValue, value != aliasValue {
            throw ConfigurationError("\(option) \(value) and \(alias) \(aliasValue) disagree: \(alias) is another name for \(option); give one")
        }
        return value ?? aliasValue
    }

    /// `--shard i/n`, `SHARD=i/n`, or Kubernetes' `JOB_COMPLETION_INDEX` with `SHARD_COUNT`.
    static func shard(_ flag: String?, _ env: [String: String]) throws(ConfigurationError) -> (index: Int, count: Int)? {
        var text = flag ?? env["SHARD"]
        if text == nil || text!.isEmpty, let index = env["JOB_COMPLETION_INDEX"], !index.isEmpty {
            // An Indexed Job's pod without the count would fetch every symbol on a share of one IP's budget, as every
            // other pod does: refused, not guessed.
            guard let count = env["SHARD_COUNT"], !count.isEmpty else {
                throw ConfigurationError("JOB_COMPLETION_INDEX=\(index) is set (an Indexed Job's pod) but SHARD_COUNT is not: set SHARD_COUNT to the Job's completions (or SHARD=i/n), so each pod takes its own share of the symbols")
            }
            text = "\(index)/\(count)"
        }
        guard let text, !text.isEmpty else { return nil }
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ConfigurationError("invalid shard '\(text)' (--shard, SHARD or JOB_COMPLETION_INDEX/SHARD_COUNT): use i/n with 0 <= i < n, e.g. 0/4")
        }
        return (i, n)
    }

    /// `--start` and `--end` (exclusive), or their aliases: the range as first and last millisecond, nil without a start.
    static func range(_ options: BackfillRange, now: Int64) throws(ConfigurationError) -> ClosedRange<Int64>? {
        let startText = try alias(options.start, options.startDate, option: "--start", alias: "--start-date")
        let endText = try alias(options.end, options.endDate, option: "--end", alias: "--end-date")
        let start = try start(startText, now: now)
        let end = try date(endText, option: "--end")
        if end != nil && start == nil { throw ConfigurationError("--end needs --start") }
        guard let start else { return nil }
        if let end, start >= end {
            throw ConfigurationError("--start \(startText ?? "") is not before --end \(endText ?? "")")
        }
        return start...((end ?? now + 1) - 1)
    }

    /// `now`: for refusing a `--start` in the future, where nothing can be fetched.
    static func klines(_ command: KlinesCommand, environment env: [String: String],
                       now: Int64 = SystemClock().now()) throws(ConfigurationError) -> KlinesConfiguration {
        let common = try common(command.common, environment: env, databaseRequired: !command.common.dryRun)
        let intervals = try intervals(try alias(command.timeframes, command.period, option: "--timeframes", alias: "--period"),
                                      market: common.market)
        let lookback = try positive(command.lookbackHours, env: "LOOKBACK_HOURS", env, default: 24, option: "--lookback-hours")
        let catchUp = try positive(command.maxCatchUpDays, env: nil, env, default: 7, option: "--max-catch-up-days")
        let range = try range(command.range, now: now)
        // The planner takes an exclusive end, and none when `--end` was not given (the run reaches now).
        let endGiven = (command.range.end ?? command.range.endDate) != nil
        let (start, end) = (range?.lowerBound, endGiven ? range.map { $0.upperBound + 1 } : nil)
        if command.fromListing && start != nil { throw ConfigurationError("--from-listing and --start exclude each other: pick one") }
        if let limit = command.pageLimit, !(1...common.market.maxKlinesLimit).contains(limit) {
            throw ConfigurationError("invalid --page-limit \(limit): Binance \(common.market.rawValue) accepts 1 to \(common.market.maxKlinesLimit)")
        }
        var planner = RangePlanner(lookbackMilliseconds: Int64(lookback) * 3_600_000,
                                   maxCatchUpMilliseconds: Int64(catchUp) * 86_400_000, explicitStart: start, explicitEnd: end)
        planner.fromListing = command.fromListing
        var config = KlinesConfiguration(common: common, intervals: intervals, planner: planner, pageLimit: command.pageLimit)
        config.series = try series(command.series, market: common.market, env)
        (config.source, config.archive) = try archive(command.archive, sourceVariable: "BINANCE_KLINES_SOURCE", env)
        return config
    }

    /// `--series` or `BINANCE_KLINES_SERIES`: a comma-separated list of trade, mark, index, premium (default trade);
    /// the price series exist on futures only (USD-M and COIN-M).
    static func series(_ option: SeriesOption, market: Market, _ env: [String: String]) throws(ConfigurationError) -> [PriceSeries] {
        let from = option.series != nil ? "--series" : "BINANCE_KLINES_SERIES"
        let text = option.series ?? env["BINANCE_KLINES_SERIES"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 } ?? "trade"
        var out: [PriceSeries] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = part.trimmingCharacters(in: .whitespaces).lowercased()
            guard let series = PriceSeries(rawValue: name) else {
                throw ConfigurationError("invalid series '\(part)' (\(from)='\(text)'): use trade, mark, index or premium, comma-separated")
            }
            guard series.isAvailable(on: market) else {
                throw ConfigurationError("\(from) \(series): Binance publishes mark, index and premium index candles for futures only (USD-M and COIN-M); drop --market \(market.rawValue) or ask for trade")
            }
            if !out.contains(series) { out.append(series) }
        }
        return out
    }

    /// data.binance.vision, Binance's public archives (binance-public-data).
    static let defaultArchiveURL = ArchiveSettings().url

    /// `--source` (or its variable), `--archive-url` / `BINANCE_ARCHIVE_URL` and `--spool-dir` / `BINANCE_SPOOL_DIR`.
    static func archive(_ options: ArchiveOptions, sourceVariable: String, _ env: [String: String]) throws(ConfigurationError)
        -> (SourceMode, ArchiveSettings) {
        let sourceText = options.source ?? env[sourceVariable].flatMap { $0.isEmpty ? nil : $0 } ?? "auto"
        guard let source = SourceMode(rawValue: sourceText.lowercased()) else {
            throw ConfigurationError("invalid source '\(sourceText)' (--source or \(sourceVariable)): use auto, rest or archive")
        }
        var archiveURL = defaultArchiveURL
        if let text = options.archiveURL ?? env["BINANCE_ARCHIVE_URL"].flatMap({ $0.isEmpty ? nil : $0 }) {
            archiveURL = try url(text, source: options.archiveURL != nil ? "--archive-url" : "BINANCE_ARCHIVE_URL")
        }
        var spool = env["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        if let text = options.spoolDirectory ?? env["BINANCE_SPOOL_DIR"].flatMap({ $0.isEmpty ? nil : $0 }) {
            let name = options.spoolDirectory != nil ? "--spool-dir" : "BINANCE_SPOOL_DIR"
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: text, isDirectory: &isFolder), isFolder.boolValue else {
                throw ConfigurationError("spool folder '\(text.prefix(200))' (\(name)) does not exist: create it, or name another (archive downloads are written there while they are read)")
            }
            guard FileManager.default.isWritableFile(atPath: text) else {
                throw ConfigurationError("spool folder '\(text.prefix(200))' (\(name)) is not writable by this user: name a folder it may write")
            }
            spool = text
        }
        return (source, ArchiveSettings(url: archiveURL, spoolDirectory: spool))
    }
}

/// Where archive files come from, and the folder downloads are spooled to while they are read.
public struct ArchiveSettings: Sendable, Equatable {
    public var url: String
    /// `--spool-dir` / `BINANCE_SPOOL_DIR`, else `TMPDIR`, else /tmp: each download is a file under
    /// `binance-extractor-spool/` there until it is read.
    public var spoolDirectory: String

    public init(url: String = "https://data.binance.vision", spoolDirectory: String = "/tmp") {
        self.url = url
        self.spoolDirectory = spoolDirectory
    }
}
