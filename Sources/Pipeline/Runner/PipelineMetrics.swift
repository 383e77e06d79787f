import BinanceAPI
import StoreKit
import Telemetry

/// What the pipeline counts, as typed calls with a no-op default: each metric's name, unit, description and
/// attributes live here once (`RunPipelineMetrics`), so a call site cannot misname a metric or let its description
/// drift from what it counts ("written to MariaDB" on PostgreSQL).
public protocol PipelineMetrics: Sendable {
    /// Closed, checked candles of `table`'s series taken from Binance (REST, or a file with `fromArchive`).
    func fetched(klines count: Int, table: KlineTable, fromArchive: Bool)
    func written(klines count: Int, table: KlineTable)
    func written(fundingRates count: Int)
    func written(trades count: Int, market: Market)
    func written(metricRows count: Int)
    /// Time a task waited for request weight.
    func waitedForWeight(seconds: Double, market: Market)
    /// A candle from its stream's final event committed, `seconds` after the event arrived (`follow`).
    func committedFromStream(lagSeconds: Double, table: KlineTable)
}

extension PipelineMetrics {
    public func fetched(klines count: Int, table: KlineTable, fromArchive: Bool) {}
    public func written(klines count: Int, table: KlineTable) {}
    public func written(fundingRates count: Int) {}
    public func written(trades count: Int, market: Market) {}
    public func written(metricRows count: Int) {}
    public func waitedForWeight(seconds: Double, market: Market) {}
    public func committedFromStream(lagSeconds: Double, table: KlineTable) {}
}

/// Counts nothing (a unit test, a run without telemetry).
public struct NoPipelineMetrics: PipelineMetrics {
    public init() {}
}

/// The run's OTLP metrics (`RunMetrics`, exported at the end of the run).
public struct RunPipelineMetrics: PipelineMetrics {
    let sink: RunMetrics

    public init(_ sink: RunMetrics) { self.sink = sink }

    /// The metrics of the run the current task belongs to, or none.
    public static var current: any PipelineMetrics { RunMetrics.current.map(RunPipelineMetrics.init) ?? NoPipelineMetrics() }

    static func attributes(_ table: KlineTable) -> [String: String] {
        ["market": table.market.rawValue, "interval": table.interval.rawValue, "series": table.series.rawValue]
    }

    public func fetched(klines count: Int, table: KlineTable, fromArchive: Bool) {
        var attributes = Self.attributes(table)
        if fromArchive { attributes["source"] = "archive" }
        sink.add("binance_extractor.klines.fetched", Double(count), unit: "{kline}", description: "Closed, checked klines fetched from Binance.",
                 attributes: attributes)
    }

    public func written(klines count: Int, table: KlineTable) {
        guard count > 0 else { return }
        sink.add("binance_extractor.klines.written", Double(count), unit: "{kline}", description: "Klines written to the database.",
                 attributes: Self.attributes(table))
    }

    public func written(fundingRates count: Int) {
        sink.add("binance_extractor.funding_rates.written", Double(count), unit: "{rate}", description: "Funding rates written to the database.")
    }

    public func written(trades count: Int, market: Market) {
        sink.add("binance_extractor.agg_trades.written", Double(count), unit: "{trade}", description: "Aggregate trades written to the database.",
                 attributes: ["market": market.rawValue])
    }

    public func written(metricRows count: Int) {
        sink.add("binance_extractor.metrics.written", Double(count), unit: "{row}", description: "Open interest and ratio rows written.")
    }

    public func waitedForWeight(seconds: Double, market: Market) {
        sink.add("binance_extractor.rate_limit.wait", seconds, unit: "s", description: "Time tasks waited for request weight.", integer: false,
                 attributes: ["market": market.rawValue])
    }

    public func committedFromStream(lagSeconds: Double, table: KlineTable) {
        sink.record("binance_extractor.follow.commit_lag", seconds: lagSeconds,
                    description: "From a candle's final stream event arriving to its commit.", attributes: Self.attributes(table))
    }
}
