import ArgumentParser
import BinanceAPI
import BinanceArchive
import Foundation
import Logging
import Pipeline
import StoreKit
import Tracing

/// `binance-extractor audit`.
struct AuditCommand: ExtractorCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Prove the copy exact: compare stored rows with Binance's REST answers, recheck the archive files it was built from, explain every hole.",
        discussion: """
        Compares the stored rows of each table and symbol with what Binance's REST API answers, through the weight \
        budget: every row of [--start, --end), or --sample N random days of the stored span (default 20). Kline tables \
        (every series) and futures_metrics are matched on their times, funding tables on funding_time, aggregate \
        trades by id (a sampled day: its first 1000 trades). Each difference is listed with table, symbol, time (or \
        id), column, stored value and REST's value. --fix writes REST's rows where they differ or are missing (REST is \
        the exchange's own record); --prefer archive keeps the stored values and writes only missing rows. A stored \
        row REST does not have is listed, never deleted.

        --recheck-archives sends a HEAD (no weight) for each file in archive_files, reads again those whose ETag, \
        Last-Modified or size changed, writes the rows that changed, and records the new reading.

        Holes are labelled: exchange_downtime (Binance has no rows there: confirmed outages), archive_hole (files \
        lacked it, REST had it: filled, counted in row_sources), local_miss (not fetched yet: run `gaps`).

        Exit status: 0 nothing differs (or everything found was repaired or kept by --prefer archive); 3 differences \
        remain; 1 the audit could not finish (Binance, the archive host or the database failed); 2 bad input.
        """)

    @Option(help: ArgumentHelp("Only these intervals' kline tables (comma-separated). Default: every kline table of the market that exists, and its funding, metrics and trades tables.", valueName: "list"))
    var timeframes: String?

    @OptionGroup var range: BackfillRange

    @Option(help: "Random days per table and symbol, when no --start is given. Default: 20.")
    var sample: Int?

    @Option(help: "Seed of the sample's days (the same seed picks the same days). Default: random.")
    var seed: UInt64?

    @Flag(help: "Write REST's rows where the copy differs or lacks them.")
    var fix = false

    @Option(help: "With --fix: rest (REST's values replace differing ones) or archive (the stored values stay; only missing rows are written). Default: rest.")
    var prefer: String?

    @Flag(name: .customLong("recheck-archives"), help: "Ask the archive host about every recorded file again (HEAD) and re-read those that changed; no REST comparison unless --start or --sample is given too.")
    var recheckArchives = false

    @Option(help: "table, json (one object) or auto (a table on a terminal, JSON otherwise). Default: auto.")
    var format: String?

    @Option(name: .customLong("max-listed"), help: "Differences listed in the report at most (all are counted). Default: 1000.")
    var maxListed: Int?

    @OptionGroup var archive: ArchiveOptions

    @OptionGroup var common: CommonOptions
}

extension AuditCommand {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runAudit(self, environment: environment, context: context, span: span)
    }
}

/// What `audit` was asked, validated.
struct AuditConfiguration: Sendable {
    var common: CommonConfiguration
    /// nil: every symbol stored.
    var symbols: [Symbol]?
    var intervals: [KlineInterval]?
    var range: ClosedRange<Int64>?
    var sample: Int
    var seed: UInt64
    var compare: Bool
    var recheck: Bool
    var fix: Bool
    var keepStored: Bool
    var maxListed: Int
    var archive: ArchiveSettings
}

extension ExtractorCLI {
    static func auditConfiguration(_ command: AuditCommand, environment: [String: String], now: Int64) throws(ConfigurationError) -> AuditConfiguration {
        // Symbols are optional here: without --symbols or DEFAULT_SYMBOLS, every stored symbol is audited.
        let named = command.common.symbols != nil || command.common.symbol != nil || !(environment["DEFAULT_SYMBOLS"] ?? "").isEmpty
        var env = environment
        if !named { env["DEFAULT_SYMBOLS"] = "BTCUSDT" }
        var common = try ConfigurationReader.common(command.common, environment: env, databaseRequired: true)
        if command.common.dryRun { throw ConfigurationError("audit has no --dry-run: it writes nothing without --fix (or --recheck-archives, which writes the rows a re-uploaded file changed)") }
        switch command.format?.lowercased() {
        case nil, "auto": break
        case "table": common.summaryAsTable = true
        case "json": common.summaryAsTable = false
        default: throw ConfigurationError("invalid --format '\(command.format ?? "")': use table, json or auto")
        }
        let intervals = try command.timeframes.map { text throws(ConfigurationError) in try ConfigurationReader.intervals(text, market: common.market) }
        let range = try ConfigurationReader.range(command.range, now: now)
        if range != nil && command.sample != nil { throw ConfigurationError("--sample and --start both say which rows to compare: give one of them") }
        let sample = command.sample ?? 20
        guard (1...366).contains(sample) else { throw ConfigurationError("invalid --sample \(sample): give 1 to 366 days") }
        let keepStored: Bool
        switch command.prefer?.lowercased() {
        case nil, "rest": keepStored = false
        case "archive": keepStored = true
        default: throw ConfigurationError("invalid --prefer '\(command.prefer ?? "")': use rest or archive")
        }
        if command.prefer != nil && !command.fix { throw ConfigurationError("--prefer says what --fix keeps: add --fix, or leave --prefer out") }
        let maxListed = command.maxListed ?? 1000
        guard maxListed >= 0 else { throw ConfigurationError("invalid --max-listed \(maxListed): give 0 or more") }
        let (_, archive) = try ConfigurationReader.archive(command.archive, sourceVariable: "BINANCE_KLINES_SOURCE", environment)
        return AuditConfiguration(common: common, symbols: named ? common.symbols : nil, intervals: intervals, range: range, sample: sample,
                                  seed: command.seed ?? UInt64.random(in: 0...UInt64.max),
                                  compare: !command.recheckArchives || range != nil || command.sample != nil, recheck: command.recheckArchives,
                                  fix: command.fix, keepStored: keepStored, maxListed: maxListed, archive: archive)
    }

    static func runAudit(_ command: AuditCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let config: AuditConfiguration
        do { config = try auditConfiguration(command, environment: environment, now: context.clock.now()) } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        guard let location = config.common.database else { return fail(ConfigurationError("audit needs a database"), context: context) }
        let logger = makeLogger("audit", level: config.common.logLevel, context: context)
        // The tables audited: those of the market that exist (read before the run prepares them, so none is created).
        let reading = location.open(size: 2, logger: logger)
        defer { reading.shutdown() }
        let existing: Set<String>
        do { existing = try await reading.coverage.existingTables() } catch { return storageFailure(error, context: context) }
        let market = config.common.market
        let klineTables = KlineTable.all.filter { $0.market == market && existing.contains($0.name) && (config.intervals?.contains($0.interval) ?? true) }
        var others: [TableDefinition] = []
        if config.intervals == nil {
            if market != .spot, existing.contains(FundingTable.name(for: market)) { others.append(FundingTable.definition(for: market)) }
            if market == .futures, existing.contains(MetricsTable.name) { others.append(MetricsTable.definition) }
            if existing.contains(TradeTable(market: market).name) { others.append(TradeTable(market: market).definition) }
        }
        let audited = others
        let runner = JobRunner(command: "audit", config: config.common, context: context, span: span)
        return await runner.run(klineTables: klineTables, otherTables: others,
                                describe: ["tables": "\(klineTables.count + others.count)", "fix": "\(config.fix)", "recheck_archives": "\(config.recheck)"]) { resources in
            guard let tables = resources.tables else { throw ConfigurationError("audit needs a database") }
            // Named symbols with their `PAIR_*` families expanded (the run's own list); none named: every stored symbol.
            var config = config
            if config.symbols != nil { config.symbols = resources.symbols }
            let audit = AuditRun(config: config, resources: resources, tables: tables, reader: reading.audit, coverage: reading.coverage,
                                 klineTables: klineTables, others: audited, logger: logger)
            let report = try await audit.run()
            let status = report.status
            return .report(report.table(), json: report.json(), status: status)
        }
    }
}
