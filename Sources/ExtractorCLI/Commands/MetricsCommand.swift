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

/// `binance-extractor metrics`.
struct MetricsCommand: ExtractorCommand {
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

extension MetricsCommand {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runMetrics(self, environment: environment, context: context, span: span)
    }
}

extension ExtractorCLI {
    static func runMetrics(_ command: MetricsCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let common: CommonConfiguration, range: ClosedRange<Int64>?, lookback: Int, source: SourceMode, archive: ArchiveSettings
        do throws(ConfigurationError) {
            common = try ConfigurationReader.common(command.common, environment: environment, databaseRequired: !command.common.dryRun)
            guard common.market == .futures else {
                throw ConfigurationError("open interest and trader ratios exist on USD-M futures only: drop --market \(common.market.rawValue)")
            }
            guard common.families.isEmpty else {
                throw ConfigurationError("metrics are a symbol's (BTCUSDT), not a contract family's: list the symbols instead of \(common.families.map { $0.name + "_*" }.joined(separator: ","))")
            }
            (source, archive) = try ConfigurationReader.archive(command.archive, sourceVariable: "BINANCE_METRICS_SOURCE", environment)
            range = try ConfigurationReader.range(command.range, now: context.clock.now())
            lookback = try ConfigurationReader.positive(command.lookbackHours, env: "LOOKBACK_HOURS", environment, default: 24, option: "--lookback-hours")
        } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        return await JobRunner(command: "metrics", config: common, context: context, span: span).run(
            klineTables: [], otherTables: [MetricsTable.definition], describe: ["source": source.rawValue, "spool_dir": archive.spoolDirectory]
        ) { resources in
            let units = resources.symbols.map { ExtractionUnit(market: .futures, symbol: $0, dataset: .metrics) }
            let store = resources.metricsStore
            let files = resources.archive(source, archive)
            return .run(units: units) { unit, attempt in
                var extractor = MetricsExtractor(unit: unit, client: resources.client, store: store, clock: resources.clock,
                                                 lookbackMilliseconds: Int64(lookback) * 3_600_000, explicitRange: range, batchSize: common.batchSize,
                                                 sourceMode: source, archive: files, dryRun: common.dryRun, logger: resources.logger)
                extractor.recordsTo = resources.ledger
                return try await extractor.run(attempt)
            }
        }
    }
}
