import BuildInfo
import BinanceAPI
import Clocks
import Foundation
import HTTPTransport
import Logging
import Pipeline
import PostgresStore
import StoreKit
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
    func archive(_ source: SourceMode, baseURL: String) -> ArchiveClient? {
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
    case run(units: [ExtractionUnit], work: @Sendable (ExtractionUnit, UnitAttempt) async throws -> UnitOutcome)
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
        summary.usesArchives = describe["source"].map { $0 != SourceMode.rest.rawValue } ?? false
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
