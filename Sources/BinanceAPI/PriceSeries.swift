/// Which candle series of a USD-M symbol: the trades' (`/fapi/v1/klines`), or one of the prices Binance computes and
/// publishes as candles of their own (USD-M Futures REST API, Market Data: "Mark Price Kline/Candlestick Data",
/// "Index Price Kline/Candlestick Data", "Premium Index Kline Data"). Those have no volumes and no trades: each
/// candle holds open, high, low, close and, in field 8, the count of basic data it was made from.
public enum PriceSeries: String, Sendable, CaseIterable, CustomStringConvertible {
    case trade, mark, index, premium

    /// The USD-M endpoint of the series.
    public var futuresPath: String {
        switch self {
        case .trade: "/fapi/v1/klines"
        case .mark: "/fapi/v1/markPriceKlines"
        case .index: "/fapi/v1/indexPriceKlines"
        case .premium: "/fapi/v1/premiumIndexKlines"
        }
    }

    /// The query parameter naming the instrument: the index is a pair's ("Index Price Kline/Candlestick Data" takes
    /// `pair`), the others a symbol's.
    public var instrumentParameter: String { self == .index ? "pair" : "symbol" }

    /// A premium index is the mark's distance from the index, and is below zero whenever the contract trades under it;
    /// mark and index prices are prices, above zero.
    public var allowsNegativeValues: Bool { self == .premium }

    public var description: String { rawValue }
}

/// One candle of a computed price series (mark, index, premium index), with exact decimal values.
public struct PriceKline: Sendable, Equatable {
    public var openTime: Int64
    public var open: DecimalString
    public var high: DecimalString
    public var low: DecimalString
    public var close: DecimalString
    public var closeTime: Int64
    /// Binance's count of the basic data (mark or index observations) the candle was made from.
    public var basicDataCount: Int64

    public init(openTime: Int64, open: DecimalString, high: DecimalString, low: DecimalString, close: DecimalString, closeTime: Int64,
                basicDataCount: Int64) {
        self.openTime = openTime
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.closeTime = closeTime
        self.basicDataCount = basicDataCount
    }
}

extension PriceKline {
    /// What always holds for such a candle: low <= open, close <= high; mark and index prices above zero (a premium
    /// index may be zero or below); a count of basic data that is not negative; the open time aligned to the interval
    /// and the close time its last millisecond.
    public func validate(interval: KlineInterval, series: PriceSeries) throws(PriceKlineValidationError) {
        func fail(_ reason: String) -> PriceKlineValidationError { PriceKlineValidationError(openTime: openTime, reason: reason, values: self) }
        if !series.allowsNegativeValues && DecimalString.compare(low, .zero) <= 0 { throw fail("low \(low) is not above zero") }
        if DecimalString.compareSigned(low, high) > 0 { throw fail("low \(low) is above high \(high)") }
        for (name, value) in [("open", open), ("close", close)] {
            if DecimalString.compareSigned(value, low) < 0 { throw fail("\(name) \(value) is below low \(low)") }
            if DecimalString.compareSigned(value, high) > 0 { throw fail("\(name) \(value) is above high \(high)") }
        }
        if basicDataCount < 0 { throw fail("negative count of basic data \(basicDataCount)") }
        if interval.openTime(containing: openTime) != openTime { throw fail("open time \(openTime) is not aligned to \(interval.rawValue)") }
        let expectedClose = interval.closeTime(forOpenTime: openTime)
        if closeTime != expectedClose {
            throw fail("close time \(closeTime) is not open time + \(interval.rawValue) - 1 ms (\(expectedClose))")
        }
    }
}

/// A price candle that failed its consistency check; carries its values so the report shows them.
public struct PriceKlineValidationError: Error, CustomStringConvertible, Equatable {
    public let openTime: Int64
    public let reason: String
    public let values: PriceKline

    public var description: String {
        "invalid price kline at \(UTCCalendar.iso8601(openTime)): \(reason) "
            + "[open=\(values.open) high=\(values.high) low=\(values.low) close=\(values.close) count=\(values.basicDataCount)]"
    }
}

/// One GET of a page of a computed price series: where it goes and what it weighs.
public struct PriceKlinesRequest: Sendable, Equatable {
    public var series: PriceSeries
    /// A symbol, or for the index a pair (the name given in `--symbols`).
    public var instrument: Symbol
    public var interval: KlineInterval
    public var startTime: Int64?
    public var endTime: Int64?
    public var limit: Int

    public init(series: PriceSeries, instrument: Symbol, interval: KlineInterval, startTime: Int64?, endTime: Int64?, limit: Int) {
        self.series = series
        self.instrument = instrument
        self.interval = interval
        self.startTime = startTime
        self.endTime = endTime
        self.limit = limit
    }

    /// "Request Weight: based on parameter LIMIT", the same steps as the trade klines: [1,100) 1, [100,500) 2,
    /// [500,1000] 5, above 1000 10 (limit at most 1500).
    public var weight: Int { Market.futures.klinesWeight(limit: limit) }

    /// Path and query, e.g. `/fapi/v1/indexPriceKlines?pair=BTCUSDT&interval=1h&startTime=...&limit=499`. Names are
    /// validated to `[A-Z0-9-_.]` and intervals come from a fixed list, so nothing needs escaping.
    public var pathAndQuery: String {
        series.futuresPath + "?" + KlinesRequest.query(instrument: series.instrumentParameter, instrument, interval: interval,
                                                       startTime: startTime, endTime: endTime, limit: limit)
    }
}
