import BinanceAPI
import StoreKit

/// One unit of work for the supervisor: a market x symbol x dataset (klines of a timeframe, the holes of a
/// timeframe, funding rates, aggregate trades).
public struct ExtractionUnit: Sendable, Hashable, CustomStringConvertible {
    public enum Dataset: Sendable, Hashable {
        case klines(KlineInterval)
        case gaps(KlineInterval)
        case funding
        case aggTrades
        /// USD-M open interest and trader ratios (`futures_metrics`).
        case metrics
        /// The holes of `futures_metrics`.
        case metricsGaps
    }

    public let market: Market
    public let symbol: Symbol
    public let dataset: Dataset
    /// Kline and gap units: which candles (trade, mark, index, premium index).
    public let series: PriceSeries

    public init(market: Market, symbol: Symbol, interval: KlineInterval, series: PriceSeries = .trade) {
        self.init(market: market, symbol: symbol, dataset: .klines(interval), series: series)
    }

    public init(market: Market, symbol: Symbol, dataset: Dataset, series: PriceSeries = .trade) {
        self.market = market
        self.symbol = symbol
        self.dataset = dataset
        self.series = series
    }

    /// The kline interval, for kline and gap units.
    public var interval: KlineInterval? {
        switch dataset {
        case .klines(let i), .gaps(let i): i
        case .funding, .aggTrades, .metrics, .metricsGaps: nil
        }
    }

    /// The kline table, for kline and gap units.
    public var table: KlineTable? { interval.map { KlineTable(market: market, interval: $0, series: series) } }

    /// What the summary shows in its timeframe column: the series names itself unless it is the trades' (`mark 1h`).
    public var timeframeLabel: String {
        let series = series == .trade ? "" : "\(series) "
        switch dataset {
        case .klines(let i): return series + i.rawValue
        case .gaps(let i): return series + "\(i.rawValue) gaps"
        case .funding: return "funding"
        case .aggTrades: return "aggTrades"
        case .metrics: return "metrics"
        case .metricsGaps: return "metrics gaps"
        }
    }

    /// The unit's span name: the operation only, so a backfill of 200 symbols x 5 timeframes has four operation names,
    /// not a thousand (OpenTelemetry, "Span name": low cardinality); symbol, market and interval are attributes.
    public var spanName: String {
        switch dataset {
        case .klines: "extract klines"
        case .gaps: "fill gaps"
        case .funding: "extract funding"
        case .aggTrades: "extract aggTrades"
        case .metrics: "extract metrics"
        case .metricsGaps: "fill metrics gaps"
        }
    }

    public var description: String { "\(market.rawValue) \(symbol) \(timeframeLabel)" }
}


/// Live progress of units, for a terminal display.
public protocol ProgressObserver: Sendable {
    func planned(_ unit: ExtractionUnit, candles: Int64)
    func advanced(_ unit: ExtractionUnit, candles: Int)
    func finished(_ unit: ExtractionUnit)
    /// An archive file was read whole (its rows were already counted by `advanced`).
    func readFile(_ unit: ExtractionUnit, name: String, rows: Int)
}

extension ProgressObserver {
    public func readFile(_ unit: ExtractionUnit, name: String, rows: Int) {}
}
