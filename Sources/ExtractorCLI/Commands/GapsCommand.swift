import ArgumentParser
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

/// `binance-extractor gaps`.
struct GapsCommand: ExtractorCommand {
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

extension GapsCommand {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runGaps(self, environment: environment, context: context, span: span)
    }
}

extension ExtractorCLI {
    static func runGaps(_ command: GapsCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let common: CommonConfiguration, intervals: [KlineInterval], since: Int64?, maxGapDays: Int?, source: SourceMode, archive: ArchiveSettings
        let series: [PriceSeries]
        do throws(ConfigurationError) {
            common = try ConfigurationReader.common(command.common, environment: environment, databaseRequired: true)
            series = try ConfigurationReader.series(command.series, market: common.market, environment)
            (source, archive) = try ConfigurationReader.archive(command.archive, sourceVariable: "BINANCE_KLINES_SOURCE", environment)
            let named = try ConfigurationReader.alias(try ConfigurationReader.alias(command.timeframes, command.timeframe, option: "--timeframes", alias: "--timeframe"),
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
                intervals = try ConfigurationReader.intervals(named, market: common.market)
            }
            since = try ConfigurationReader.start(command.since, now: context.clock.now(), option: "--since")
            let gapDays = try ConfigurationReader.alias(command.maxGapDays, command.maxGapSizeDays, option: "--max-gap-days", alias: "--max-gap-size-days")
            maxGapDays = gapDays == nil ? nil : try ConfigurationReader.positive(gapDays, env: nil, environment, default: 1, option: "--max-gap-days")
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
                .merging(["source": source.rawValue, "spool_dir": archive.spoolDirectory]) { a, _ in a }
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
            let files = resources.archive(source, archive)
            let plannedHoles = holesByUnit
            let metricsStore = resources.tables?.metrics
            return .run(units: units) { unit, attempt in
                if unit.dataset == .metricsGaps, let metricsStore {
                    return try await GapFiller(metrics: unit, holes: plannedHoles[unit] ?? [], client: resources.client, store: metricsStore,
                                                      gaps: gaps, clock: resources.clock, batchSize: common.batchSize, sourceMode: source,
                                                      archive: files, ledger: resources.ledger, logger: resources.logger).run(attempt)
                }
                return try await GapFiller(unit: unit, holes: plannedHoles[unit] ?? [], client: resources.client, store: store, gaps: gaps,
                                    clock: resources.clock, batchSize: common.batchSize, sourceMode: source, archive: files,
                                    ledger: resources.ledger, logger: resources.logger).run(attempt)
            }
        }
    }
}
