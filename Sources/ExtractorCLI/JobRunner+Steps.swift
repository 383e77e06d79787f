import BinanceAPI
import Foundation
import HTTPTransport
import Logging
import Pipeline
import StoreKit
import Telemetry
import Tracing

/// The steps of `JobRunner.run`, each with one job: say what the run is, open the store, reach Binance, expand the
/// contract families, and turn the units' reports into the summary and the exit status.
extension JobRunner {
    func makeLogger(_ label: String) -> Logger { ExtractorCLI.makeLogger(label, level: config.logLevel, context: context) }

    /// The run's first log line (no secret: the database and the API URL are shown without credentials) and its warnings.
    func announce(_ describe: [String: String], logger: Logger) {
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
    }

    /// Storage: connect (bad credentials end the run here, exit 2), create missing tables (not in a dry run), check the
    /// existing ones and the privileges, before anything is fetched. Nil without a database (a dry run).
    func openStore(klineTables: [KlineTable], otherTables: [TableDefinition], logger: Logger) async throws(EarlyExit)
        -> (store: (any DataStore)?, tables: PreparedTables?) {
        guard let location = config.database else { return (nil, nil) }
        let opened = location.open(size: min(config.maxWorkers, 8), reconnectWindowMilliseconds: Int64(config.dbReconnectWindowSeconds) * 1000,
                                   lockWaitTimeoutSeconds: config.dbLockWaitTimeoutSeconds, logger: makeLogger("storage"))
        do {
            return (opened, try await opened.prepare(klineTables: klineTables, otherTables: otherTables, dryRun: config.dryRun, logger: logger))
        } catch {
            opened.shutdown()
            if error is SchemaError { span.recordError(error) }
            throw EarlyExit(status: ExtractorCLI.storageFailure(error, context: context))
        }
    }

    /// Binance: one HTTP worker per unit in flight, one weight budget and one circuit breaker for the market.
    func binance(logger: Logger) -> (http: CurlHTTPClient, client: BinanceClient) {
        if !config.verifyTLS {
            logger.warning("TLS certificate verification is OFF for \(URLCredentials.redacted(config.apiURL)): use this for test endpoints only")
        }
        let http = CurlHTTPClient(options: .init(workers: config.maxWorkers, totalTimeoutMilliseconds: config.httpTimeoutSeconds * 1000,
                                                 verifyTLS: config.verifyTLS))
        let limiter = RateLimiter(market: config.market, rule: config.market.defaultWeightLimit, clock: context.clock,
                                  maxBanWaitMilliseconds: Int64(config.maxBanWaitSeconds) * 1000, share: config.weightShare,
                                  concurrency: config.maxWorkers)
        let breaker = CircuitBreaker(state: CircuitBreakerState(maxOpenMilliseconds: Int64(config.maxOutageWaitSeconds) * 1000),
                                     clock: context.clock)
        let client = BinanceClient(market: config.market, baseURL: config.apiURL, http: http, limiter: limiter, clock: context.clock,
                                   breaker: breaker, maxAttempts: config.requestAttempts, logger: makeLogger("binance"))
        return (http, client)
    }

    /// Reads Binance's published limits (exchangeInfo). A URL that does not answer as Binance's REST API ends the run
    /// (exit 2) before any data is fetched; any other failure keeps Binance's documented default limit.
    func readLimits(_ client: BinanceClient, logger: Logger) async throws(EarlyExit) {
        do {
            try await client.synchroniseLimits()
            let rule = await client.limiter.rule
            let own = await client.limiter.ownLimit
            logger.info("weight budget", metadata: ["rule": "\(rule)", "own_limit": "\(own)", "share": "\(config.weightShare)"])
        } catch let error as BinanceError where error.meansNotBinance {
            // A wrong --api-url (a path that answers 404, a server that is not Binance) fails every request the same
            // way: a configuration error, said before any data is fetched.
            let message = "--api-url \(URLCredentials.redacted(config.apiURL)) does not answer as Binance's REST API "
                + "(GET \(config.market.exchangeInfoPath): \(error)): give the market's base URL, without a path, e.g. \(config.market.defaultBaseURL)"
            context.errors.write("error: \(message)\n")
            span.recordError(ConfigurationError(message))
            throw EarlyExit(status: ExitStatus.badConfiguration)
        } catch {
            let rule = await client.limiter.rule
            logger.warning("could not read exchangeInfo; using Binance's documented default limit", metadata: ["error": "\(error)", "rule": "\(rule)"])
        }
    }

    /// `--symbols` with each `PAIR_*` family expanded to the contracts Binance lists now; a family with none is exit 2.
    func expandedSymbols(listed: [ExchangeInfo.SymbolInfo], logger: Logger) throws(EarlyExit) -> [Symbol] {
        var symbols = config.symbols
        guard !config.families.isEmpty else { return symbols }
        let expansion = ContractFamilies.expand(config.families, listed: listed, now: context.clock.now())
        if let empty = expansion.unmatched.first {
            let message = "--symbols \(empty.name)_*: Binance lists no \(config.market.displayName) contract of the pair \(empty.name) "
                + "(\(listed.isEmpty ? "exchangeInfo could not be read" : "check the pair's name, e.g. BTCUSD for COIN-M, BTCUSDT for USD-M"))"
            context.errors.write("error: \(message)\n")
            span.recordError(ConfigurationError(message))
            throw EarlyExit(status: ExitStatus.badConfiguration)
        }
        logger.info("contract families expanded", metadata: ["families": "\(config.families.map { $0.name + "_*" })", "contracts": "\(expansion.symbols.map(\.name))"])
        symbols += expansion.symbols.filter { !symbols.contains($0) }
        return symbols
    }

    /// A report that ends the run without fetching: text on a terminal (or `--summary table`), one JSON line otherwise.
    func printReport(_ text: String, json: String?) {
        if config.summaryAsTable ?? context.outputIsTerminal {
            context.output.write(text)
        } else {
            context.output.write((json ?? "{\"report\":\(LogLineHandler.quote(text.trimmingCharacters(in: .newlines)))}") + "\n")
        }
    }

    /// Prints the summary and turns the units' reports into the exit status. A unit that neither moved nor reached
    /// Binance's newest candle is stuck: a run that makes no progress never says "ok".
    func finish(_ summary: RunSummary, logger: Logger) -> Int32 {
        context.output.write(config.summaryAsTable ?? context.outputIsTerminal ? summary.table() : summary.jsonLine() + "\n")
        let reports = summary.reports
        let failed = reports.filter { !$0.succeeded }
        let stalled = reports.filter { $0.succeeded && $0.outcome.stalled }
        for report in stalled {
            logger.warning("unit made no progress and is not caught up: the catch-up cap stopped it before any new candle", metadata: [
                "unit": "\(report.unit)", "last_stored": "\(RunSummary.time(report.outcome.storedBefore))",
                "fetched": "\(report.outcome.fetched)", "requests": "\(report.outcome.requests)",
            ])
        }
        logger.info("run finished", metadata: [
            "units": "\(reports.count)", "failed": "\(failed.count)", "stalled": "\(stalled.count)", "written": "\(summary.totalWritten)",
            "fetched": "\(summary.totalFetched)", "requests": "\(summary.requests.sent)",
        ])
        if failed.contains(where: \.badConfiguration) { return ExitStatus.badConfiguration }
        return failed.isEmpty && stalled.isEmpty ? ExitStatus.success : ExitStatus.unitsFailed
    }
}
