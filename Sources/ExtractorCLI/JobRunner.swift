import BuildInfo
import BinanceAPI
import Clocks
import Foundation
import HTTPTransport
import Logging
import Pipeline
import PostgresStore
import Storage
import Telemetry
import Tracing

/// What a job's units work with: the database (if configured), the Binance client of the market, the clock.
struct JobResources: Sendable {
    /// The prepared store: the tables that exist and the stores that write them; nil without a database (a dry run).
    let tables: PreparedTables?
    /// The symbols the run works on: `--symbols`, with each `PAIR_*` family expanded (`ContractFamilies`).
    var symbols: [Symbol] = []
    let client: BinanceClient
    let clock: any WallClock
    let logger: Logger
    let progress: TerminalProgress?
    let dryRun: Bool
    /// The HTTP client the run's Binance requests go through (archive downloads too).
    var http: (any HTTPClient)?

    /// The archive files of `--source auto|archive`, through the run's HTTP client; nil for `rest`.
    func archive(_ source: KlinesSourceMode, baseURL: String) -> ArchiveClient? {
        guard source != .rest, let http else { return nil }
        return ArchiveClient(baseURL: baseURL, http: http, clock: clock, logger: logger)
    }

    /// Tables that exist (a dry run treats missing ones as empty).
    var existingTables: Set<String> { tables?.existing ?? [] }

    /// Klines storage as the job sees it: the real store, or in a dry run a reader that writes nothing. (Without a
    /// database there is always a dry run: the configuration requires one otherwise.)
    var klineStore: any KlineStoring {
        if let tables, !dryRun { return tables.klines }
        return DryRunStore(reader: tables.map { MissingTablesAreEmpty(store: $0.klines, existing: $0.existing) })
    }
}

/// What a command plans once the resources are up: the units and the work of one unit, or a report that ends
/// the run without fetching (e.g. `gaps --dry-run`).
enum JobPlan: Sendable {
    case run(units: [ExtractionUnit], work: @Sendable (ExtractionUnit, UnitAttempt) async throws -> SymbolExtractor.Outcome)
    /// A report for a person (`text`) and, where output is read by a program (`--summary json`, a pipe), one JSON line.
    case report(String, json: String? = nil)
}

/// The one path every extraction command takes: connect and migrate, read Binance's limits, run the units under
/// the supervisor with graceful shutdown, print the summary, and turn the outcome into an exit status.
struct JobRunner {
    let command: String
    let config: CommonConfiguration
    let context: RunContext
    let span: any Span

    func run(klineTables: [KlineTable], otherTables: [TableDefinition], describe: [String: String],
             plan: @escaping @Sendable (JobResources) async throws -> JobPlan) async -> Int32 {
        // The summary's duration is the whole run: connecting, reading exchangeInfo and waiting for weight included.
        let started = context.clock.now()
        let make = { (label: String) in ExtractorCLI.makeLogger(label, level: config.logLevel, context: context) }
        let logger = make("binance-extractor")
        span.attributes["binance.market"] = config.market.rawValue
        span.attributes["binance.symbols.count"] = Int64(config.symbols.count)
        span.attributes["binance_extractor.dry_run"] = config.dryRun
        var metadata: Logger.Metadata = [
            "command": "\(command)", "market": "\(config.market.rawValue)", "symbols": "\(config.symbols.count)",
            "dry_run": "\(config.dryRun)", "database": "\(config.database.map { "\($0)" } ?? "none")", "api": "\(URLCredentials.redacted(config.apiURL))",
        ]
        for (k, v) in describe { metadata[k] = "\(v)" }
        if let shard = config.shard { metadata["shard"] = "\(shard.index)/\(shard.count)" }
        logger.info("run starting", metadata: metadata)
        for warning in config.warnings { logger.warning("\(warning)") }

        // Storage: connect (bad credentials end the run here, exit 2), create missing tables (not in a dry run), check
        // the existing ones and the privileges, before anything is fetched.
        var store: (any DataStore)?
        var tables: PreparedTables?
        if let location = config.database {
            let opened = location.open(size: min(config.maxWorkers, 8), reconnectWindowMilliseconds: Int64(config.dbReconnectWindowSeconds) * 1000,
                                       lockWaitTimeoutSeconds: config.dbLockWaitTimeoutSeconds, logger: make("storage"))
            store = opened
            do {
                tables = try await opened.prepare(klineTables: klineTables, otherTables: otherTables, dryRun: config.dryRun, logger: logger)
            } catch {
                opened.shutdown()
                if error is SchemaError { span.recordError(error) }
                return ExtractorCLI.storageFailure(error, context: context)
            }
        }
        defer { store?.shutdown() }

        // Binance: one HTTP worker per unit in flight, one weight budget and one circuit breaker for the market.
        if !config.verifyTLS {
            logger.warning("TLS certificate verification is OFF for \(URLCredentials.redacted(config.apiURL)): use this for test endpoints only")
        }
        let http = CurlHTTPClient(options: .init(workers: config.maxWorkers, totalTimeoutMilliseconds: config.httpTimeoutSeconds * 1000,
                                                 verifyTLS: config.verifyTLS))
        defer { http.shutdown() }
        let limiter = RateLimiter(market: config.market, rule: config.market.defaultWeightLimit, clock: context.clock,
                                  maxBanWaitMilliseconds: Int64(config.maxBanWaitSeconds) * 1000, share: config.weightShare,
                                  concurrency: config.maxWorkers)
        let breaker = CircuitBreaker(state: CircuitBreakerState(maxOpenMilliseconds: Int64(config.maxOutageWaitSeconds) * 1000),
                                     clock: context.clock)
        let client = BinanceClient(market: config.market, baseURL: config.apiURL, http: http, limiter: limiter, clock: context.clock,
                                   breaker: breaker, maxAttempts: config.requestAttempts, logger: make("binance"))
        do {
            try await client.synchroniseLimits()
            let rule = await limiter.rule
            let own = await limiter.ownLimit
            logger.info("weight budget", metadata: ["rule": "\(rule)", "own_limit": "\(own)", "share": "\(config.weightShare)"])
        } catch let error as BinanceError where error.meansNotBinance {
            // A wrong --api-url (a path that answers 404, a server that is not Binance) fails every request the same
            // way: a configuration error, said before any data is fetched.
            let message = "--api-url \(URLCredentials.redacted(config.apiURL)) does not answer as Binance's REST API "
                + "(GET \(config.market.exchangeInfoPath): \(error)): give the market's base URL, without a path, e.g. \(config.market.defaultBaseURL)"
            context.errors.write("error: \(message)\n")
            span.recordError(ConfigurationError(message))
            return ExitStatus.badConfiguration
        } catch {
            let rule = await limiter.rule
            logger.warning("could not read exchangeInfo; using Binance's documented default limit", metadata: ["error": "\(error)", "rule": "\(rule)"])
        }

        var symbols = config.symbols
        if !config.families.isEmpty {
            let expansion = ContractFamilies.expand(config.families, listed: client.listedSymbols, now: context.clock.now())
            if let empty = expansion.unmatched.first {
                let message = "--symbols \(empty.name)_*: Binance lists no \(config.market.displayName) contract of the pair \(empty.name) "
                    + "(\(client.listedSymbols.isEmpty ? "exchangeInfo could not be read" : "check the pair's name, e.g. BTCUSD for COIN-M, BTCUSDT for USD-M"))"
                context.errors.write("error: \(message)\n")
                span.recordError(ConfigurationError(message))
                return ExitStatus.badConfiguration
            }
            logger.info("contract families expanded", metadata: ["families": "\(config.families.map { $0.name + "_*" })", "contracts": "\(expansion.symbols.map(\.name))"])
            symbols += expansion.symbols.filter { !symbols.contains($0) }
        }
        let progress: TerminalProgress? = context.errorsIsTerminal ? TerminalProgress(sink: context.errors, clock: context.clock) : nil
        var resources = JobResources(tables: tables, client: client, clock: context.clock, logger: make("extractor"), progress: progress,
                                     dryRun: config.dryRun)
        resources.symbols = symbols
        resources.http = http
        let jobPlan: JobPlan
        do {
            jobPlan = try await plan(resources)
        } catch {
            progress?.stop()
            context.errors.write("error: \(error)\n")
            span.recordError(error)
            return (error as? StoreFailure)?.isConfiguration == true ? ExitStatus.badConfiguration : ExitStatus.unitsFailed
        }
        guard case .run(let units, let work) = jobPlan else {
            progress?.stop()
            if case .report(let text, let json) = jobPlan {
                if config.summaryAsTable ?? context.outputIsTerminal {
                    context.output.write(text)
                } else {
                    context.output.write((json ?? "{\"report\":\(LogLineHandler.quote(text.trimmingCharacters(in: .newlines)))}") + "\n")
                }
            }
            return ExitStatus.success
        }

        let supervisor = Supervisor(maxWorkers: config.maxWorkers, unitRetries: config.unitRetries, clock: context.clock, logger: make("supervisor"))
        let reports = await GracefulRun.run(logger: logger, deadlineSeconds: config.shutdownTimeoutSeconds, shutdown: context.shutdown,
                                            onDeadline: context.onShutdownDeadline) {
            await supervisor.run(units: units, work: work)
        }
        progress?.stop()

        var summary = RunSummary(reports: reports, dryRun: config.dryRun, durationMilliseconds: context.clock.now() - started,
                                 requests: client.requestStats, weightUsed: await limiter.weightGranted,
                                 rateLimitWaitMilliseconds: await limiter.waitedMilliseconds)
        summary.usesArchives = describe["source"].map { $0 != KlinesSourceMode.rest.rawValue } ?? false
        context.output.write(config.summaryAsTable ?? context.outputIsTerminal ? summary.table() : summary.jsonLine() + "\n")
        let failed = reports.filter { !$0.succeeded }
        // A unit that neither moved nor reached Binance's newest candle is stuck: a run that makes no progress never
        // says "ok".
        let stalled = reports.filter { $0.succeeded && $0.outcome.stalled }
        for report in stalled {
            logger.warning("unit made no progress and is not caught up: the catch-up cap stopped it before any new candle", metadata: [
                "unit": "\(report.unit)", "last_stored": "\(RunSummary.time(report.outcome.storedBefore))",
                "fetched": "\(report.outcome.fetched)", "requests": "\(report.outcome.requests)",
            ])
        }
        logger.info("run finished", metadata: [
            "units": "\(reports.count)", "failed": "\(failed.count)", "stalled": "\(stalled.count)", "written": "\(summary.totalWritten)",
            "fetched": "\(summary.totalFetched)", "requests": "\(client.requestStats.sent)",
        ])
        if failed.contains(where: \.badConfiguration) { return ExitStatus.badConfiguration }
        return failed.isEmpty && stalled.isEmpty ? ExitStatus.success : ExitStatus.unitsFailed
    }
}

extension ExtractorCLI {
    static func runKlines(_ command: KlinesCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let config: KlinesConfiguration
        do { config = try Resolve.klines(command, environment: environment, now: context.clock.now()) } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        span.attributes["binance.timeframes"] = config.intervals.map(\.rawValue).joined(separator: ",")
        span.attributes["binance.series"] = config.series.map(\.rawValue).joined(separator: ",")
        let common = config.common
        let series = config.series, intervals = config.intervals
        let settings = SymbolExtractor.Settings(planner: config.planner, pageLimit: config.pageLimit, batchSize: common.batchSize,
                                                sourceMode: config.source, listArchiveFiles: common.dryRun)
        let archiveURL = config.archiveURL
        return await JobRunner(command: "klines", config: common, context: context, span: span).run(
            // The confirmed-gaps table: a silence the run crosses is recorded there.
            klineTables: config.series.flatMap { series in config.intervals.map { KlineTable(market: common.market, interval: $0, series: series) } },
            otherTables: [ConfirmedGapTable.definition],
            describe: ["timeframes": config.intervals.map(\.rawValue).joined(separator: ","), "series": config.series.map(\.rawValue).joined(separator: ","),
                       "source": config.source.rawValue]
        ) { resources in
            let store = resources.klineStore
            var withArchive = settings
            withArchive.archive = resources.archive(settings.sourceMode, baseURL: archiveURL)
            let settings = withArchive
            // The index is a pair's: the contracts of one pair share one index unit.
            let units = series.flatMap { series in
                intervals.flatMap { interval in
                    resources.symbols.map(series.instrument(for:)).uniqued().map { ExtractionUnit(market: common.market, symbol: $0, interval: interval, series: series) }
                }
            }
            return .run(units: units) { unit, attempt in
                try await SymbolExtractor(unit: unit, source: resources.client, store: store, clock: resources.clock, settings: settings,
                                          progress: resources.progress, logger: resources.logger).run(attempt)
            }
        }
    }

    static func runGaps(_ command: GapsCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let common: CommonConfiguration, intervals: [KlineInterval], since: Int64?, maxGapDays: Int?, source: KlinesSourceMode, archiveURL: String
        let series: [PriceSeries]
        do throws(ConfigurationError) {
            common = try Resolve.common(command.common, environment: environment, databaseRequired: true)
            series = try Resolve.series(command.series, market: common.market, environment)
            (source, archiveURL) = try Resolve.archive(command.archive, sourceVariable: "BINANCE_KLINES_SOURCE", environment)
            let named = try Resolve.alias(try Resolve.alias(command.timeframes, command.timeframe, option: "--timeframes", alias: "--timeframe"),
                                          command.period, option: "--timeframes", alias: "--period")
            if command.metrics {
                // futures_metrics has one cadence (5 minutes): nothing to choose.
                guard named == nil, command.series.series == nil else {
                    throw ConfigurationError("gaps --metrics checks futures_metrics (every 5 minutes): drop --timeframes and --series")
                }
                guard common.market == .futures else { throw ConfigurationError("gaps --metrics: futures_metrics is USD-M only; drop --market \(common.market.rawValue)") }
                intervals = []
            } else {
                guard named != nil else { throw ConfigurationError("no timeframes given: pass --timeframes, e.g. --timeframes 15m,1h") }
                intervals = try Resolve.intervals(named, market: common.market)
            }
            since = try Resolve.start(command.since, now: context.clock.now(), option: "--since")
            let gapDays = try Resolve.alias(command.maxGapDays, command.maxGapSizeDays, option: "--max-gap-days", alias: "--max-gap-size-days")
            maxGapDays = gapDays == nil ? nil : try Resolve.positive(gapDays, env: nil, environment, default: 1, option: "--max-gap-days")
        } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        span.attributes["binance.timeframes"] = intervals.map(\.rawValue).joined(separator: ",")
        let klineTables = series.flatMap { series in intervals.map { KlineTable(market: common.market, interval: $0, series: series) } }
        let metrics = command.metrics
        let tables: [any GapTable] = metrics ? [MetricsTable()] : klineTables
        let recheck = command.recheck
        return await JobRunner(command: "gaps", config: common, context: context, span: span).run(
            klineTables: klineTables, otherTables: [ConfirmedGapTable.definition] + (metrics ? [MetricsTable.definition] : []),
            describe: (metrics ? ["table": MetricsTable.name] : ["timeframes": intervals.map(\.rawValue).joined(separator: ",")])
                .merging(["source": source.rawValue]) { a, _ in a }
        ) { resources in
            guard let gaps = resources.tables?.gaps else { return .report("no database: nothing to check\n") }
            let hasConfirmations = resources.existingTables.contains(ConfirmedGapTable.name)
            var report = "", units: [ExtractionUnit] = [], holesByUnit: [ExtractionUnit: [KlineHole]] = [:]
            var json: [String] = []
            let q = LogLineHandler.quote
            for table in tables {
                guard resources.existingTables.contains(table.name) else {
                    report += "no table \(table.name) yet: nothing to check\n"
                    json.append("{\"table\":\(q(table.name)),\"exists\":false,\"holes\":[]}")
                    continue
                }
                // The index table holds pairs: a contract stands for its pair there.
                let asked = (table as? KlineTable).map { table in resources.symbols.map(table.series.instrument(for:)).uniqued() } ?? resources.symbols
                if recheck && !common.dryRun && hasConfirmations { try await gaps.forget(table: table, symbols: asked) }
                let confirmed = recheck || !hasConfirmations ? [] : try await gaps.confirmed(table: table)
                var holes = try await gaps.holes(table: table, symbols: asked, since: since).filter { !confirmed.contains($0) }
                if let maxGapDays {
                    let limit = Int64(maxGapDays) * 86_400_000
                    for hole in holes where hole.to - hole.from >= limit {
                        resources.logger.warning("hole longer than --max-gap-days skipped",
                                                 metadata: ["table": "\(table.name)", "hole": "\(hole)", "max_gap_days": "\(maxGapDays)"])
                    }
                    holes.removeAll { $0.to - $0.from >= limit }
                }
                if common.dryRun {
                    report += holes.isEmpty ? "no holes in \(table.name)\n" : "holes in \(table.name):\n"
                    for hole in holes {
                        report += "  \(hole.symbol)  \(UTCCalendar.iso8601(hole.from)) .. \(UTCCalendar.iso8601(hole.to))  \(hole.missing) candles\n"
                    }
                    if !confirmed.isEmpty { report += "(\(confirmed.count) holes confirmed empty on Binance's side are not listed; --recheck lists them)\n" }
                    let listed = holes.map { "{\"symbol\":\(q($0.symbol)),\"from\":\(q(UTCCalendar.iso8601($0.from))),\"to\":\(q(UTCCalendar.iso8601($0.to))),\"missing\":\($0.missing)}" }
                    json.append("{\"table\":\(q(table.name)),\"exists\":true,\"holes\":[\(listed.joined(separator: ","))],\"confirmed_not_listed\":\(confirmed.count)}")
                    continue
                }
                let bySymbol = Dictionary(grouping: holes, by: \.symbol)
                for symbol in asked {
                    guard let found = bySymbol[symbol.name] else { continue }
                    let unit = (table as? KlineTable).map { ExtractionUnit(market: common.market, symbol: symbol, dataset: .gaps($0.interval), series: $0.series) }
                        ?? ExtractionUnit(market: .futures, symbol: symbol, dataset: .metricsGaps)
                    units.append(unit)
                    holesByUnit[unit] = found
                }
            }
            if common.dryRun || units.isEmpty && !report.isEmpty {
                return .report(report, json: "{\"gaps\":{\"dry_run\":\(common.dryRun),\"tables\":[\(json.joined(separator: ","))]}}")
            }
            if !report.isEmpty { resources.logger.info("\(report.trimmingCharacters(in: .newlines))") }
            let store = resources.klineStore
            let archive = resources.archive(source, baseURL: archiveURL)
            let plannedHoles = holesByUnit
            let metricsStore = resources.tables?.metrics
            return .run(units: units) { unit, attempt in
                if unit.dataset == .metricsGaps, let metricsStore {
                    return try await GapFiller(metrics: unit, holes: plannedHoles[unit] ?? [], client: resources.client, store: metricsStore,
                                                      gaps: gaps, clock: resources.clock, batchSize: common.batchSize, sourceMode: source,
                                                      archive: archive, logger: resources.logger).run(attempt)
                }
                return try await GapFiller(unit: unit, holes: plannedHoles[unit] ?? [], client: resources.client, store: store, gaps: gaps,
                                    clock: resources.clock, batchSize: common.batchSize, sourceMode: source, archive: archive,
                                    logger: resources.logger).run(attempt)
            }
        }
    }

    static func runFunding(_ command: FundingCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let common: CommonConfiguration, range: ClosedRange<Int64>?, lookback: Int
        do throws(ConfigurationError) {
            common = try Resolve.common(command.common, environment: environment, databaseRequired: !command.common.dryRun)
            guard common.market.hasFunding else { throw ConfigurationError("funding rates exist on futures only (futures or coinm): drop --market spot") }
            // "Get Funding Rate History of Perpetual Futures" (COIN-M): delivery contracts have no funding.
            let delivery = common.symbols.filter { !$0.isPerpetual }
            guard delivery.isEmpty else {
                throw ConfigurationError("funding exists for perpetual contracts only; \(delivery.map(\.name).joined(separator: ",")) "
                                         + "\(delivery.count == 1 ? "is a delivery contract" : "are delivery contracts"): drop it from --symbols (e.g. use BTCUSD_PERP)")
            }
            range = try Resolve.range(command.range, now: context.clock.now())
            lookback = try Resolve.positive(command.lookbackHours, env: "LOOKBACK_HOURS", environment, default: 24, option: "--lookback-hours")
        } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        return await JobRunner(command: "funding", config: common, context: context, span: span).run(
            klineTables: [], otherTables: [FundingTable.definition(for: common.market)], describe: [:]
        ) { resources in
            // A family's delivery contracts have no funding: its perpetual only.
            let units = resources.symbols.filter(\.isPerpetual).map { ExtractionUnit(market: common.market, symbol: $0, dataset: .funding) }
            // The table exists unless this is a dry run on a database that never had it.
            let table = FundingTable.name(for: common.market)
            let store: any FundingStoring = resources.tables.flatMap { $0.existing.contains(table) ? $0.funding?.table(for: common.market) : nil }
                ?? EmptyFundingStore()
            return .run(units: units) { unit, attempt in
                try await FundingExtractor(symbol: unit.symbol, client: resources.client, store: store, clock: resources.clock,
                                           lookbackMilliseconds: Int64(lookback) * 3_600_000, explicitRange: range,
                                           batchSize: common.batchSize, dryRun: common.dryRun).run(attempt)
            }
        }
    }

    static func runTrades(_ command: TradesCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let common: CommonConfiguration, range: ClosedRange<Int64>?, lookback: Int, maxPages: Int, source: KlinesSourceMode, archiveURL: String
        do throws(ConfigurationError) {
            common = try Resolve.common(command.common, environment: environment, databaseRequired: !command.common.dryRun)
            (source, archiveURL) = try Resolve.archive(command.archive, sourceVariable: "BINANCE_TRADES_SOURCE", environment)
            range = try Resolve.range(command.range, now: context.clock.now())
            lookback = try Resolve.positive(command.lookbackHours, env: "LOOKBACK_HOURS", environment, default: 24, option: "--lookback-hours")
            maxPages = try Resolve.positive(command.maxPages, env: nil, environment, default: 1000, option: "--max-pages")
        } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        let table = TradeTable(market: common.market)
        return await JobRunner(command: "trades", config: common, context: context, span: span).run(
            klineTables: [], otherTables: [table.definition], describe: ["source": source.rawValue]
        ) { resources in
            let units = resources.symbols.map { ExtractionUnit(market: common.market, symbol: $0, dataset: .aggTrades) }
            let store: any TradeStoring = resources.tables.flatMap { $0.existing.contains(table.name) ? $0.trades : nil } ?? EmptyTradeStore()
            let startTime = range?.lowerBound ?? (resources.clock.now() - Int64(lookback) * 3_600_000)
            let archive = resources.archive(source, baseURL: archiveURL)
            return .run(units: units) { unit, attempt in
                try await TradeExtractor(market: common.market, symbol: unit.symbol, client: resources.client, store: store, clock: resources.clock,
                                         startTime: startTime, backfill: range, batchSize: common.batchSize, maxPages: maxPages, dryRun: common.dryRun,
                                         sourceMode: source, archive: archive, logger: resources.logger).run(attempt)
            }
        }
    }
}

extension ExtractorCLI {
    static func runMetrics(_ command: MetricsCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let common: CommonConfiguration, range: ClosedRange<Int64>?, lookback: Int, source: KlinesSourceMode, archiveURL: String
        do throws(ConfigurationError) {
            common = try Resolve.common(command.common, environment: environment, databaseRequired: !command.common.dryRun)
            guard common.market == .futures else {
                throw ConfigurationError("open interest and trader ratios exist on USD-M futures only: drop --market \(common.market.rawValue)")
            }
            guard common.families.isEmpty else {
                throw ConfigurationError("metrics are a symbol's (BTCUSDT), not a contract family's: list the symbols instead of \(common.families.map { $0.name + "_*" }.joined(separator: ","))")
            }
            (source, archiveURL) = try Resolve.archive(command.archive, sourceVariable: "BINANCE_METRICS_SOURCE", environment)
            range = try Resolve.range(command.range, now: context.clock.now())
            lookback = try Resolve.positive(command.lookbackHours, env: "LOOKBACK_HOURS", environment, default: 24, option: "--lookback-hours")
        } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        return await JobRunner(command: "metrics", config: common, context: context, span: span).run(
            klineTables: [], otherTables: [MetricsTable.definition], describe: ["source": source.rawValue]
        ) { resources in
            let units = resources.symbols.map { ExtractionUnit(market: .futures, symbol: $0, dataset: .metrics) }
            let store: any MetricsStoring = resources.tables.flatMap { $0.existing.contains(MetricsTable.name) ? $0.metrics : nil } ?? EmptyMetricsStore()
            let archive = resources.archive(source, baseURL: archiveURL)
            return .run(units: units) { unit, attempt in
                try await MetricsExtractor(unit: unit, client: resources.client, store: store, clock: resources.clock,
                                           lookbackMilliseconds: Int64(lookback) * 3_600_000, explicitRange: range, batchSize: common.batchSize,
                                           sourceMode: source, archive: archive, dryRun: common.dryRun, logger: resources.logger).run(attempt)
            }
        }
    }
}

struct EmptyMetricsStore: MetricsStoring {
    func lastMetricTime(symbol: Symbol) async throws -> Int64? { nil }
    func write(symbol: Symbol, rows: [FuturesMetric]) async throws -> Int { 0 }
}

/// `PAIR_*` in `--symbols`: the contracts of a pair, found when the run starts, so a CronJob follows the quarters
/// without an edit. The contracts `exchangeInfo` lists for the pair (its `pair` field, or the name's prefix where a
/// market gives none: the perpetual, the current and the next quarter), and the quarterly contract that delivered in
/// the last 7 days (Binance may stop listing it at delivery; its last candles are stored by the run after).
extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

enum ContractFamilies {
    static let recentlyDelivered: Int64 = 7 * 86_400_000

    static func expand(_ families: [Symbol], listed: [ExchangeInfo.SymbolInfo], now: Int64) -> (symbols: [Symbol], unmatched: [Symbol]) {
        var symbols: [Symbol] = [], unmatched: [Symbol] = []
        for family in families {
            var found = listed.filter { ($0.pair ?? String($0.symbol.prefix { $0 != "_" })) == family.name && $0.symbol.hasPrefix(family.name + "_") }
                .compactMap { try? Symbol(validating: $0.symbol) }
            if let last = QuarterlyDelivery.around(now)?.last, now - last <= recentlyDelivered,
               let delivered = try? Symbol(validating: QuarterlyDelivery.symbol(pair: family.name, delivery: last)), !found.contains(delivered), !found.isEmpty {
                found.append(delivered)
            }
            if found.isEmpty { unmatched.append(family) }
            symbols += found.sorted().filter { !symbols.contains($0) }
        }
        return (symbols, unmatched)
    }
}

/// A dry run without a database, or before the table exists: nothing stored, nothing written.
struct EmptyFundingStore: FundingStoring {
    func table(for market: Market) -> any FundingStoring { self }
    func lastFundingTime(symbol: Symbol) async throws -> Int64? { nil }
    func write(symbol: Symbol, rows: [FundingRate]) async throws -> Int { 0 }
}

struct EmptyTradeStore: TradeStoring {
    func lastTradeId(table: TradeTable, symbol: Symbol) async throws -> Int64? { nil }
    func lastTradeTime(table: TradeTable, symbol: Symbol) async throws -> Int64? { nil }
    func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int { 0 }
}
