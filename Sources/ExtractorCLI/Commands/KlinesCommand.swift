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

/// `binance-extractor klines`.
struct KlinesCommand: ExtractorCommand {
    static let configuration = CommandConfiguration(
        commandName: "klines",
        abstract: "Fetch klines (candlesticks) from Binance into the database, resuming from the last stored candle.",
        discussion: """
        Without --start, each market x symbol x timeframe resumes from its last stored candle, re-reading an overlap \
        (the last stored candle and at least one hour before it); with nothing stored it starts LOOKBACK_HOURS ago \
        (or at the symbol's first candle with --from-listing). A run far behind moves at most --max-catch-up-days \
        past the last stored candle; the next run continues from there. The still-open candle is never stored. \
        Futures tables are klines_m1, klines_m5, ..., klines_d1, klines_mo1 (1M); spot tables are spot_klines_*. \
        With --series mark, index or premium: mark price, index price (by pair: the name given in --symbols, a contract \
        standing for its pair) and premium index candles, into mark_klines_*, index_klines_* and premium_klines_* \
        (coinm_mark_klines_* ... on COIN-M): open, high, low, close and Binance's count of basic data.
        """)

    @Option(help: ArgumentHelp("Comma-separated Binance intervals: 1s (spot), 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M. Required.", valueName: "list"))
    var timeframes: String?

    /// petrosa-binance-data-extractor's name for one timeframe (`--period 15m`).
    @Option(name: .customLong("period"), help: .hidden)
    var period: String?

    @OptionGroup var series: SeriesOption

    @OptionGroup var range: BackfillRange

    @Flag(name: .customLong("from-listing"), help: "A symbol with nothing stored starts at its first candle instead of LOOKBACK_HOURS ago.")
    var fromListing = false

    @Option(name: .customLong("lookback-hours"), help: "Where a unit with nothing stored starts. Env: LOOKBACK_HOURS. Default: 24.")
    var lookbackHours: Int?

    @Option(name: .customLong("max-catch-up-days"), help: "How far past the last stored candle one run goes. Default: 7.")
    var maxCatchUpDays: Int?

    @Option(name: .customLong("page-limit"), help: "Klines per request. Default: the size buying the most klines per weight (futures 499, spot 1000).")
    var pageLimit: Int?

    @OptionGroup var archive: ArchiveOptions

    @OptionGroup var common: CommonOptions
}

extension KlinesCommand {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runKlines(self, environment: environment, context: context, span: span)
    }
}

extension ExtractorCLI {
    static func runKlines(_ command: KlinesCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let config: KlinesConfiguration
        do { config = try ConfigurationReader.klines(command, environment: environment, now: context.clock.now()) } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        span.attributes["binance.timeframes"] = config.intervals.map(\.rawValue).joined(separator: ",")
        span.attributes["binance.series"] = config.series.map(\.rawValue).joined(separator: ",")
        let common = config.common
        let series = config.series, intervals = config.intervals
        let settings = SymbolExtractor.Settings(planner: config.planner, pageLimit: config.pageLimit, batchSize: common.batchSize,
                                                sourceMode: config.source, listArchiveFiles: common.dryRun)
        let archive = config.archive
        return await JobRunner(command: "klines", config: common, context: context, span: span).run(
            // The confirmed-gaps table: a silence the run crosses is recorded there.
            klineTables: config.series.flatMap { series in config.intervals.map { KlineTable(market: common.market, interval: $0, series: series) } },
            otherTables: [ConfirmedGapTable.definition],
            describe: ["timeframes": config.intervals.map(\.rawValue).joined(separator: ","), "series": config.series.map(\.rawValue).joined(separator: ","),
                       "source": config.source.rawValue, "spool_dir": config.archive.spoolDirectory]
        ) { resources in
            let store = resources.klineStore
            var withArchive = settings
            withArchive.archive = resources.archive(settings.sourceMode, archive)
            withArchive.ledger = resources.ledger
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
}
