import ArgumentParser
import BinanceAPI
import Clocks
import Foundation
import HTTPTransport
import Logging
import Pipeline
import ServiceLifecycle
import Storage
import Telemetry
import Tracing

/// Exit statuses, as documented in `--help` and the README.
public enum ExitStatus {
    public static let success: Int32 = 0
    /// Some unit failed, or the run was interrupted: run again to complete.
    public static let unitsFailed: Int32 = 1
    /// Bad configuration or input; nothing was written.
    public static let badConfiguration: Int32 = 2
}

/// What a run talks to, injectable for tests.
public struct RunContext: Sendable {
    public var clock: any WallClock
    public var output: LineSink
    public var errors: LineSink
    public var outputIsTerminal: Bool
    public var errorsIsTerminal: Bool
    /// What happens when a shutdown outlasts `--shutdown-timeout`: the program exits with status 1 (a batch is
    /// one atomic statement, so no half-written batch can remain); tests observe instead.
    public var onShutdownDeadline: @Sendable () -> Void

    public init(clock: any WallClock = SystemClock(), output: LineSink = .standardOutput, errors: LineSink = .standardError,
                outputIsTerminal: Bool? = nil, errorsIsTerminal: Bool? = nil,
                onShutdownDeadline: @escaping @Sendable () -> Void = { exit(ExitStatus.unitsFailed) }) {
        self.onShutdownDeadline = onShutdownDeadline
        self.clock = clock
        self.output = output
        self.errors = errors
        self.outputIsTerminal = outputIsTerminal ?? output.isTerminal
        self.errorsIsTerminal = errorsIsTerminal ?? errors.isTerminal
    }
}

/// The `binance-extractor` program: parses, resolves configuration, runs, and returns the exit status.
public enum ExtractorCLI {
    public static func run(arguments: [String], environment: [String: String], context: RunContext = RunContext()) async -> Int32 {
        let command: any ParsableCommand
        do {
            command = try RootCommand.parseAsRoot(arguments)
        } catch {
            let code = RootCommand.exitCode(for: error)
            let message = RootCommand.fullMessage(for: error)
            if code == .success {
                context.output.write(helpText(arguments) ?? message)
                context.output.write("\n")
                return ExitStatus.success
            }
            context.errors.write("error: " + message + "\n")
            return ExitStatus.badConfiguration
        }
        let name: String
        switch command {
        case is KlinesCommand: name = "klines"
        case is MigrateCommand: name = "migrate"
        default:
            // `--help` and `help` parse into ArgumentParser's own help command.
            context.output.write((helpText(arguments) ?? RootCommand.helpMessage()) + "\n")
            return ExitStatus.success
        }
        // Every run exports its trace: one root span for the command, everything else beneath it.
        let level = Logger.Level(rawValue: (environment["LOG_LEVEL"] ?? "info").lowercased()) ?? .info
        let telemetry = TelemetrySession(configuration: TelemetryConfiguration(environment: environment),
                                         logger: makeLogger("telemetry", level: level, context: context))
        let status = await telemetry.run {
            await withSpan(name, context: telemetry.rootContext, ofKind: .internal) { span in
                span.attributes["binance_extractor.command"] = name
                let status: Int32
                switch command {
                case let klines as KlinesCommand:
                    status = await runKlines(klines, environment: environment, context: context, span: span)
                case let migrate as MigrateCommand:
                    status = await runMigrate(migrate, environment: environment, context: context)
                default:
                    status = ExitStatus.success
                }
                span.attributes["process.exit.code"] = Int64(status)
                if status != ExitStatus.success {
                    span.setStatus(SpanStatus(code: .error, message: "exit status \(status)"))
                }
                return status
            }
        }
        await telemetry.shutdown()
        return status
    }

    /// Help for the subcommand named in `arguments` (`klines --help`, `help migrate`), or nil for the root.
    static func helpText(_ arguments: [String]) -> String? {
        let words = arguments.first == "help" ? Array(arguments.dropFirst()) : arguments
        let subcommands: [String: any ParsableCommand.Type] = ["klines": KlinesCommand.self, "migrate": MigrateCommand.self]
        guard let name = words.first, let type = subcommands[name] else { return nil }
        return RootCommand.helpMessage(for: type)
    }

    static func makeLogger(_ label: String, level: Logger.Level, context: RunContext) -> Logger {
        Logger(label: label) { label in JSONLogHandler(label: label, level: level, sink: context.errors) }
    }

    static func fail(_ error: ConfigurationError, context: RunContext) -> Int32 {
        context.errors.write("error: \(error.message)\n")
        return ExitStatus.badConfiguration
    }

    // MARK: migrate

    static func runMigrate(_ command: MigrateCommand, environment: [String: String], context: RunContext) async -> Int32 {
        let level: Logger.Level, uri: DatabaseURI?, tables: [KlineTable]
        do throws(ConfigurationError) {
            level = try Resolve.logLevel(command.database.logLevel, environment)
            uri = try Resolve.database(command.database.mysqlURI, environment)
            var market: Market?, intervals: [KlineInterval]?
            if let text = command.market { market = try Resolve.market(text) }
            if let text = command.timeframes { intervals = try Resolve.intervals(text, market: market) }
            tables = KlineTable.all.filter { t in
                (market == nil || t.market == market) && (intervals == nil || intervals!.contains(t.interval))
            }
        } catch {
            return fail(error, context: context)
        }
        guard let uri else {
            return fail(ConfigurationError("no database configured: set MYSQL_URI or pass --mysql-uri"), context: context)
        }
        let logger = makeLogger("migrate", level: level, context: context)
        let pool = ConnectionPool(uri: uri, size: 1, logger: logger)
        defer { pool.shutdown() }
        do {
            let report = try await SchemaMigrator(pool: pool).migrate(tables)
            logger.info("migration done", metadata: [
                "database": "\(uri)", "created": "\(report.created.count)", "upgraded": "\(report.upgraded.count)",
                "unchanged": "\(report.unchanged.count)",
            ])
            context.output.write("created: \(report.created.joined(separator: " "))\nupgraded: \(report.upgraded.joined(separator: " "))\nunchanged: \(report.unchanged.count) tables\n")
            return ExitStatus.success
        } catch let error as DatabaseError {
            context.errors.write("error: \(error)\n")
            return error.isConfiguration || error.isConnectionLost ? ExitStatus.badConfiguration : ExitStatus.unitsFailed
        } catch {
            context.errors.write("error: \(error)\n")
            return ExitStatus.unitsFailed
        }
    }

    // MARK: klines

    static func runKlines(_ command: KlinesCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let config: KlinesConfiguration
        do {
            config = try Resolve.klines(command, environment: environment)
        } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        span.attributes["binance.market"] = config.market.rawValue
        span.attributes["binance.timeframes"] = config.intervals.map(\.rawValue).joined(separator: ",")
        span.attributes["binance.symbols.count"] = Int64(config.symbols.count)
        span.attributes["binance_extractor.dry_run"] = config.dryRun
        let logger = makeLogger("binance-extractor", level: config.logLevel, context: context)
        let units = config.intervals.flatMap { interval in
            config.symbols.map { ExtractionUnit(market: config.market, symbol: $0, interval: interval) }
        }
        logger.info("run starting", metadata: [
            "command": "klines", "market": "\(config.market.rawValue)",
            "timeframes": "\(config.intervals.map(\.rawValue).joined(separator: ","))",
            "symbols": "\(config.symbols.count)", "units": "\(units.count)", "dry_run": "\(config.dryRun)",
            "database": "\(config.database.map { "\($0)" } ?? "none")", "api": "\(config.apiURL)",
        ])

        // Storage: connect (bad credentials end the run here, exit 2), create missing tables.
        var pool: ConnectionPool?
        if let uri = config.database {
            let p = ConnectionPool(uri: uri, options: .init(size: min(config.maxWorkers, 8),
                                                            reconnectWindowMilliseconds: Int64(config.dbReconnectWindowSeconds) * 1000,
                                                            lockWaitTimeoutSeconds: config.dbLockWaitTimeoutSeconds),
                                   logger: makeLogger("storage", level: config.logLevel, context: context))
            pool = p
            do {
                let migrator = SchemaMigrator(pool: p)
                let tables = config.intervals.map { KlineTable(market: config.market, interval: $0) }
                let missing = try await migrator.missingTables(tables)
                if !missing.isEmpty {
                    if config.dryRun {
                        logger.info("dry run: tables missing, treating them as empty", metadata: ["tables": "\(missing.map(\.name))"])
                    } else {
                        let report = try await migrator.migrate(missing)
                        logger.info("created missing tables", metadata: ["tables": "\(report.created.joined(separator: ","))"])
                    }
                }
            } catch let error as DatabaseError {
                p.shutdown()
                context.errors.write("error: \(error)\n")
                return error.isConfiguration || error.isConnectionLost ? ExitStatus.badConfiguration : ExitStatus.unitsFailed
            } catch {
                p.shutdown()
                context.errors.write("error: \(error)\n")
                return ExitStatus.unitsFailed
            }
        }
        defer { pool?.shutdown() }
        let realStore: (any KlineStoring)? = pool.map { KlineStore(pool: $0) }
        let existing: Set<String>
        if config.dryRun, let pool {
            existing = Set((try? await pool.withConnection {
                try $0.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
            })?.compactMap { $0[0] } ?? [])
        } else {
            existing = []
        }
        let store: any KlineStoring = config.dryRun
            ? DryRunStore(reader: realStore.map { MissingTablesAreEmpty(store: $0, existing: existing) })
            : realStore!

        // Binance: one HTTP worker per unit in flight, one weight budget for the market.
        if !config.verifyTLS {
            logger.warning("TLS certificate verification is OFF for \(config.apiURL): use this for test endpoints only")
        }
        let http = CurlHTTPClient(options: .init(workers: config.maxWorkers,
                                                 totalTimeoutMilliseconds: config.httpTimeoutSeconds * 1000,
                                                 verifyTLS: config.verifyTLS))
        defer { http.shutdown() }
        let limiter = RateLimiter(market: config.market, rule: config.market.defaultWeightLimit, clock: context.clock,
                                  maxBanWaitMilliseconds: Int64(config.maxBanWaitSeconds) * 1000)
        let breaker = CircuitBreaker(state: CircuitBreakerState(maxOpenMilliseconds: Int64(config.maxOutageWaitSeconds) * 1000),
                                     clock: context.clock)
        let client = BinanceClient(market: config.market, baseURL: config.apiURL, http: http, limiter: limiter,
                                   clock: context.clock, breaker: breaker, maxAttempts: config.requestAttempts,
                                   logger: makeLogger("binance", level: config.logLevel, context: context))
        do {
            try await client.synchroniseLimits()
            let rule = await limiter.rule
            logger.info("weight budget", metadata: ["rule": "\(rule)"])
        } catch {
            let rule = await limiter.rule
            logger.warning("could not read exchangeInfo; using Binance's documented default limit",
                           metadata: ["error": "\(error)", "rule": "\(rule)"])
        }

        let progress: TerminalProgress? = context.errorsIsTerminal ? TerminalProgress(sink: context.errors, clock: context.clock) : nil
        let supervisor = Supervisor(maxWorkers: config.maxWorkers, unitRetries: config.unitRetries, clock: context.clock,
                                    logger: makeLogger("supervisor", level: config.logLevel, context: context))
        let settings = SymbolExtractor.Settings(planner: config.planner, pageLimit: config.pageLimit, batchSize: config.batchSize)
        let extractorLogger = makeLogger("extractor", level: config.logLevel, context: context)
        let clock = context.clock
        let started = clock.now()

        let reports = await GracefulRun.run(logger: logger, deadlineSeconds: config.shutdownTimeoutSeconds,
                                            onDeadline: context.onShutdownDeadline) {
            await supervisor.run(units: units) { unit in
                let extractor = SymbolExtractor(unit: unit, source: client, store: store, clock: clock, settings: settings,
                                                progress: progress, logger: extractorLogger)
                return try await extractor.run()
            }
        }
        progress?.stop()

        let summary = RunSummary(reports: reports, dryRun: config.dryRun, durationMilliseconds: clock.now() - started,
                                 requests: client.requestStats, weightUsed: await limiter.weightGranted,
                                 rateLimitWaitMilliseconds: await limiter.waitedMilliseconds)
        context.output.write(config.summaryAsTable ?? context.outputIsTerminal ? summary.table() : summary.jsonLine() + "\n")
        let failed = reports.filter { !$0.succeeded }
        logger.info("run finished", metadata: [
            "units": "\(reports.count)", "failed": "\(failed.count)", "written": "\(summary.totalWritten)",
            "fetched": "\(summary.totalFetched)", "requests": "\(client.requestStats.sent)",
        ])
        return failed.isEmpty ? ExitStatus.success : ExitStatus.unitsFailed
    }
}

/// In a dry run, a table that does not exist yet holds nothing (instead of failing the read).
struct MissingTablesAreEmpty: KlineStoring {
    let store: any KlineStoring
    let existing: Set<String>

    func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64? {
        existing.contains(table.name) ? try await store.lastOpenTime(table: table, symbol: symbol) : nil
    }

    func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int { 0 }
}
