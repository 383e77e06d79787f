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

/// `binance-extractor trades`.
struct TradesCommand: ExtractorCommand {
    static let configuration = CommandConfiguration(
        commandName: "trades",
        abstract: "Fetch aggregate trades into agg_trades / spot_agg_trades, from the last stored aggregate trade id.")

    @OptionGroup var range: BackfillRange

    @Option(name: .customLong("lookback-hours"), help: "Where a symbol with nothing stored starts. Env: LOOKBACK_HOURS. Default: 24.")
    var lookbackHours: Int?

    @Option(name: .customLong("max-pages"), help: "Pages of 1000 trades per symbol and run at most; the next run continues. Default: 1000.")
    var maxPages: Int?

    @OptionGroup var archive: ArchiveOptions

    @OptionGroup var common: CommonOptions

    /// Rows per write for trades when neither `--batch-size` nor `DB_BATCH_SIZE` says otherwise.
    static let defaultBatchSize = 20_000
}

extension TradesCommand {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runTrades(self, environment: environment, context: context, span: span)
    }
}

extension ExtractorCLI {
    static func runTrades(_ command: TradesCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let common: CommonConfiguration, range: ClosedRange<Int64>?, lookback: Int, maxPages: Int, source: SourceMode, archive: ArchiveSettings
        do throws(ConfigurationError) {
            common = try ConfigurationReader.common(command.common, environment: environment, databaseRequired: !command.common.dryRun)
            (source, archive) = try ConfigurationReader.archive(command.archive, sourceVariable: "BINANCE_TRADES_SOURCE", environment)
            range = try ConfigurationReader.range(command.range, now: context.clock.now())
            lookback = try ConfigurationReader.positive(command.lookbackHours, env: "LOOKBACK_HOURS", environment, default: 24, option: "--lookback-hours")
            maxPages = try ConfigurationReader.positive(command.maxPages, env: nil, environment, default: 1000, option: "--max-pages")
        } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        let table = TradeTable(market: common.market)
        // Trades come by the million (a busy symbol's month is tens of millions): unless the user set a batch size, they
        // are written 20,000 at a time, where each store's bulk path (LOAD DATA LOCAL, COPY) runs at its own pace; at
        // 2,000 a batch the statement's fixed cost halves the rate.
        let batchSize = command.common.batchSize == nil && (environment["DB_BATCH_SIZE"] ?? "").isEmpty ? TradesCommand.defaultBatchSize : common.batchSize
        return await JobRunner(command: "trades", config: common, context: context, span: span).run(
            klineTables: [], otherTables: [table.definition], describe: ["source": source.rawValue, "spool_dir": archive.spoolDirectory]
        ) { resources in
            let units = resources.symbols.map { ExtractionUnit(market: common.market, symbol: $0, dataset: .aggTrades) }
            let store = resources.tradeStore
            let startTime = range?.lowerBound ?? (resources.clock.now() - Int64(lookback) * 3_600_000)
            let files = resources.archive(source, archive)
            return .run(units: units) { unit, attempt in
                var extractor = TradeExtractor(market: common.market, symbol: unit.symbol, client: resources.client, store: store, clock: resources.clock,
                                               startTime: startTime, backfill: range, batchSize: batchSize, maxPages: maxPages, dryRun: common.dryRun,
                                               sourceMode: source, archive: files, logger: resources.logger)
                extractor.recordsTo = resources.ledger
                return try await extractor.run(attempt)
            }
        }
    }
}
