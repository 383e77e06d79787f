import BinanceAPI

/// The table holding one market's candles of one series and interval.
///
/// Names come only from this list (`klines_m1` ... for futures, as existing consumers read them; `spot_klines_m1`
/// ... for spot; `mark_klines_m1`, `index_klines_m1`, `premium_klines_m1` for the USD-M price series), never from
/// input, so they can be spliced into SQL safely.
public struct KlineTable: Sendable, Hashable, CustomStringConvertible {
    public let market: Market
    public let interval: KlineInterval
    public let series: PriceSeries

    public init(market: Market, interval: KlineInterval, series: PriceSeries = .trade) {
        self.market = market
        self.interval = interval
        self.series = series
    }

    public var name: String { series.tablePrefix(market: market) + interval.tableSuffix }
    public var description: String { name }

    /// Every table the project can create: each market with each interval and series it offers.
    public static var all: [KlineTable] {
        Market.allCases.flatMap { market in
            PriceSeries.allCases.filter { $0.isAvailable(on: market) }.flatMap { series in
                KlineInterval.allCases.filter { $0.isAvailable(on: market) }.map { KlineTable(market: market, interval: $0, series: series) }
            }
        }
    }

    /// Trade klines hold prices, volumes, taker volumes and a trade count; a price series (mark, index, premium
    /// index) only what Binance computes for it: open, high, low, close and the count of basic data. No column of
    /// zeros stands for a value the series does not have.
    public var isTrade: Bool { series == .trade }

    /// The decimal columns of this table, in insert order after the open and close times.
    public var decimalColumns: [String] {
        guard isTrade else { return Self.ohlcColumns }
        return market == .coinm ? Self.ohlcColumns + Self.coinmVolumeColumns + Self.coinmTakerColumns : Self.decimalColumns
    }

    /// COIN-M candles count volume in contracts, and give the base asset's volume next to it (COIN-M Futures,
    /// "Kline/Candlestick Data": "Volume", "Base asset volume", "Taker buy volume", "Taker buy base asset volume"; the
    /// archives' header calls the base volume `quote_volume`, binance-public-data #267). Named for what they hold, in the
    /// order a kline carries them (`volume`, `quoteAssetVolume`, `takerBuyBaseAssetVolume`, `takerBuyQuoteAssetVolume`).
    public static let coinmVolumeColumns = ["volume_contracts", "base_asset_volume"]
    public static let coinmTakerColumns = ["taker_buy_volume_contracts", "taker_buy_base_asset_volume"]

    /// The count column: trades of a trade candle, basic data (mark or index observations) of a price candle.
    public var countColumn: String { isTrade ? "number_of_trades" : "basic_data_count" }

    /// This table's columns in the order `upsertSQL` binds them (and COPY writes them).
    public var columns: [String] {
        guard isTrade else { return ["symbol", "open_time", "close_time"] + Self.ohlcColumns + [countColumn] }
        guard market == .coinm else { return Self.columns }
        return ["symbol", "open_time", "close_time"] + Self.ohlcColumns + Self.coinmVolumeColumns + [countColumn] + Self.coinmTakerColumns
    }

    /// Open, high, low, close: what every candle has.
    public static let ohlcColumns = ["open_price", "high_price", "low_price", "close_price"]

    /// Decimal columns, in insert order after the open and close times.
    public static let priceColumns = ["open_price", "high_price", "low_price", "close_price", "volume", "quote_asset_volume"]
    public static let takerColumns = ["taker_buy_base_asset_volume", "taker_buy_quote_asset_volume"]
    public static var decimalColumns: [String] { priceColumns + takerColumns }

    /// A trade klines table's column list in the order `upsertSQL` binds them.
    public static let columns = ["symbol", "open_time", "close_time"] + priceColumns + ["number_of_trades"] + takerColumns

    /// What the table's comment says it holds.
    public var contents: String {
        switch series {
        case .trade where market == .coinm: "Binance COIN-M klines (volumes in contracts and base asset), interval \(interval.rawValue)"
        case .trade: "Binance \(market.rawValue) klines, interval \(interval.rawValue)"
        case .mark: "Binance \(market.displayName) mark price klines, interval \(interval.rawValue)"
        case .index: "Binance \(market.displayName) index price klines (by pair), interval \(interval.rawValue)"
        case .premium: "Binance \(market.displayName) premium index klines, interval \(interval.rawValue)"
        }
    }

    /// The table in the catalogue: symbol, open and close time, the decimal columns and the count, keyed by symbol and
    /// open time; each store writes its DDL from it.
    public var definition: TableDefinition {
        let count = isTrade ? nil : "count of the basic data (mark or index observations) the candle was made from"
        return TableDefinition(name: name, columns: [.symbol, .time("open_time"), .time("close_time")]
            + decimalColumns.map { .decimal($0) } + [TableDefinition.Column(countColumn, .integer, comment: count)],
            key: ["symbol", "open_time"], comment: contents)
    }
}
