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
    func archive(_ source: SourceMode, _ settings: ArchiveSettings) -> ArchiveClient? {
        guard source != .rest, let http else { return nil }
        return ArchiveClient(baseURL: settings.url, http: http, clock: clock, logger: logger, spoolDirectory: settings.spoolDirectory)
    }

    /// Where units record the files they read and their rows' sources; nil in a dry run.
    var ledger: Ledger? {
        guard !dryRun, let catalogue = tables?.catalogue else { return nil }
        return Ledger(writer: catalogue, build: BuildInfo.version)
    }

    /// Tables that exist (a dry run treats missing ones as empty).
    var existingTables: Set<String> { tables?.existing ?? [] }

    /// Each dataset's storage as the job sees it: the real store, or in a dry run the one wrapper that reads and writes
    /// nothing (`DryRunStore`). Without a database there is always a dry run: the configuration requires one otherwise.
    var klineStore: any KlineStoring {
        if let tables, !dryRun { return tables.klines }
        return DryRunStore(tables)
    }

    func fundingStore(_ market: Market) -> any FundingStoring {
        if let funding = tables?.funding, !dryRun { return funding.table(for: market) }
        return DryRunStore(tables).table(for: market)
    }

    var tradeStore: any TradeStoring {
        if let trades = tables?.trades, !dryRun { return trades }
        return DryRunStore(tables)
    }

    var metricsStore: any MetricsStoring {
        if let metrics = tables?.metrics, !dryRun { return metrics }
        return DryRunStore(tables)
    }
}

/// What a command plans once the resources are up: the units and the work of one unit, or a report that ends
/// the run without fetching (e.g. `gaps --dry-run`).
enum JobPlan: Sendable {
    case run(units: [ExtractionUnit], work: @Sendable (ExtractionUnit, UnitAttempt) async throws -> UnitOutcome)
    /// Long-running units (`follow`), fed by the hubs that keep their streams connected; both run until SIGTERM, whose
    /// stop is their normal end.
    case follow(FollowPlan)
    /// A report for a person (`text`) and, where output is read by a program (`--summary json`, a pipe), one JSON line.
    case report(String, json: String? = nil, status: Int32 = ExitStatus.success)
}

/// The one path every extraction command takes: connect and migrate, read Binance's limits, run the units under
/// the supervisor with graceful shutdown, print the summary, and turn the outcome into an exit status.
struct JobRunner {
    let command: String
    let config: CommonConfiguration
    let context: RunContext
    let span: any Span

    /// A step that ends the run before any unit starts, with the status it ends with (its message already said).
    struct EarlyExit: Error {
        let status: Int32
    }

    func run(klineTables: [KlineTable], otherTables: [TableDefinition], describe: [String: String],
             plan: @escaping @Sendable (JobResources) async throws -> JobPlan) async -> Int32 {
        // The summary's duration is the whole run: connecting, reading exchangeInfo and waiting for weight included.
        let started = context.clock.now()
        let logger = makeLogger("binance-extractor")
        announce(describe, logger: logger)
        let store: (any DataStore)?, tables: PreparedTables?
        // Every run keeps the ledger: the files it read and where each day's rows came from.
        let otherTables = otherTables + LedgerTables.all.filter { ledger in !otherTables.contains { $0.name == ledger.name } }
        do { (store, tables) = try await openStore(klineTables: klineTables, otherTables: otherTables, logger: logger) } catch {
            return error.status
        }
        let (http, client) = binance(logger: logger)
        // Closed by the service group once the units are done (`GracefulRun`), or here when the run ends before them.
        let resources = [ClosingService { store?.shutdown() }, ClosingService { http.shutdown() }]
        func endEarly(_ status: Int32) -> Int32 {
            resources.forEach { $0.close() }
            return status
        }
        let symbols: [Symbol]
        do {
            try await readLimits(client, logger: logger)
            symbols = try expandedSymbols(listed: client.listedSymbols, logger: logger)
        } catch {
            return endEarly(error.status)
        }

        let progress: TerminalProgress? = context.errorsIsTerminal ? TerminalProgress(sink: context.errors, clock: context.clock) : nil
        var job = JobResources(tables: tables, client: client, clock: context.clock, logger: makeLogger("extractor"), progress: progress,
                               dryRun: config.dryRun)
        job.symbols = symbols
        job.http = http
        let jobPlan: JobPlan
        do {
            jobPlan = try await plan(job)
        } catch {
            progress?.stop()
            context.errors.write("error: \(error)\n")
            span.recordError(error)
            return endEarly((error as? StoreFailure)?.isConfiguration == true ? ExitStatus.badConfiguration : ExitStatus.unitsFailed)
        }
        let supervisor = Supervisor(maxWorkers: config.maxWorkers, unitRetries: config.unitRetries, clock: context.clock,
                                    logger: makeLogger("supervisor"))
        let reports: [UnitReport]
        switch jobPlan {
        case .report(let text, let json, let status):
            progress?.stop()
            printReport(text, json: json)
            return endEarly(status)
        case .run(let units, let work):
            reports = await GracefulRun.run(logger: logger, deadlineSeconds: config.shutdownTimeoutSeconds, shutdown: context.shutdown,
                                            closing: resources, onDeadline: context.onShutdownDeadline) {
                await supervisor.run(units: units, work: work)
            }
        case .follow(let plan):
            progress?.following(plan.monitor)
            let reporter = FollowReporter(monitor: plan.monitor, clock: context.clock, logger: makeLogger("follow"), metrics: RunMetrics.current)
            reports = await GracefulRun.run(logger: logger, deadlineSeconds: config.shutdownTimeoutSeconds, shutdown: context.shutdown,
                                            closing: resources, onDeadline: context.onShutdownDeadline) {
                await plan.run(supervisor: supervisor, reporter: reporter, logger: logger)
            }
        }
        progress?.stop()
        var summary = RunSummary(reports: reports, dryRun: config.dryRun, durationMilliseconds: context.clock.now() - started,
                                 requests: client.requestStats, weightUsed: await client.limiter.weightGranted,
                                 rateLimitWaitMilliseconds: await client.limiter.waitedMilliseconds)
        summary.usesArchives = describe["source"].map { $0 != SourceMode.rest.rawValue } ?? false
        if summary.usesArchives, let folder = describe["spool_dir"] { summary.spool = (folder, ArchiveClient.freeBytes(under: folder)) }
        if case .follow(let plan) = jobPlan {
            summary.follows = true
            summary.following = plan.monitor.snapshot
        }
        return finish(summary, logger: logger)
    }
}
