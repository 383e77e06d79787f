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

/// `binance-extractor funding`.
struct FundingCommand: ExtractorCommand {
    static let configuration = CommandConfiguration(
        commandName: "funding",
        abstract: "Fetch USD-M funding rates into funding_rates, from the last stored funding time.")

    @OptionGroup var range: BackfillRange

    @Option(name: .customLong("lookback-hours"), help: "Where a symbol with nothing stored starts. Env: LOOKBACK_HOURS. Default: 24.")
    var lookbackHours: Int?

    @OptionGroup var common: CommonOptions
}

extension FundingCommand {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runFunding(self, environment: environment, context: context, span: span)
    }
}

extension ExtractorCLI {
    static func runFunding(_ command: FundingCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let common: CommonConfiguration, range: ClosedRange<Int64>?, lookback: Int
        do throws(ConfigurationError) {
            common = try ConfigurationReader.common(command.common, environment: environment, databaseRequired: !command.common.dryRun)
            guard common.market.hasFunding else { throw ConfigurationError("funding rates exist on futures only (futures or coinm): drop --market spot") }
            // "Get Funding Rate History of Perpetual Futures" (COIN-M): delivery contracts have no funding.
            let delivery = common.symbols.filter { !$0.isPerpetual }
            guard delivery.isEmpty else {
                throw ConfigurationError("funding exists for perpetual contracts only; \(delivery.map(\.name).joined(separator: ",")) "
                                         + "\(delivery.count == 1 ? "is a delivery contract" : "are delivery contracts"): drop it from --symbols (e.g. use BTCUSD_PERP)")
            }
            range = try ConfigurationReader.range(command.range, now: context.clock.now())
            lookback = try ConfigurationReader.positive(command.lookbackHours, env: "LOOKBACK_HOURS", environment, default: 24, option: "--lookback-hours")
        } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        return await JobRunner(command: "funding", config: common, context: context, span: span).run(
            klineTables: [], otherTables: [FundingTable.definition(for: common.market)], describe: [:]
        ) { resources in
            // A family's delivery contracts have no funding: its perpetual only.
            let units = resources.symbols.filter(\.isPerpetual).map { ExtractionUnit(market: common.market, symbol: $0, dataset: .funding) }
            let store = resources.fundingStore(common.market)
            return .run(units: units) { unit, attempt in
                var extractor = FundingExtractor(symbol: unit.symbol, client: resources.client, store: store, clock: resources.clock,
                                                 lookbackMilliseconds: Int64(lookback) * 3_600_000, explicitRange: range, batchSize: common.batchSize)
                extractor.recordsTo = resources.ledger.map { ($0, FundingTable.name(for: common.market)) }
                return try await extractor.run(attempt)
            }
        }
    }
}
