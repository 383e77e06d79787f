/// Which candle series of a futures symbol: the trades' (`/fapi/v1/klines`), or one of the prices Binance computes and
/// publishes as candles of their own (USD-M and COIN-M Futures REST API, Market Data: "Mark Price Kline/Candlestick
/// Data", "Index Price Kline/Candlestick Data", "Premium Index Kline Data"). Those have no volumes and no trades: each
/// candle holds open, high, low, close and, in field 8, the count of basic data it was made from.
public enum PriceSeries: String, Sendable, CaseIterable, CustomStringConvertible {
    case trade, mark, index, premium

    /// The endpoint's last path component, the same on USD-M (`/fapi/v1/...`) and COIN-M (`/dapi/v1/...`).
    public var endpointName: String {
        switch self {
        case .trade: "klines"
        case .mark: "markPriceKlines"
        case .index: "indexPriceKlines"
        case .premium: "premiumIndexKlines"
        }
    }

    /// The USD-M endpoint of the series.
    public var futuresPath: String { "/fapi/v1/" + endpointName }

    /// The query parameter naming the instrument: the index is a pair's ("Index Price Kline/Candlestick Data" takes
    /// `pair`), the others a symbol's.
    public var instrumentParameter: String { self == .index ? "pair" : "symbol" }

    /// A premium index is the mark's distance from the index, and is below zero whenever the contract trades under it;
    /// mark and index prices are prices, above zero.
    public var allowsNegativeValues: Bool { self == .premium }

    public var description: String { rawValue }

    /// Whether the market publishes the series: spot has trade candles only.
    public func isAvailable(on market: Market) -> Bool { self == .trade || market != .spot }

    /// The endpoint of the series on `market` (trade klines: the market's own; COIN-M's under `/dapi/v1`).
    public func path(on market: Market) -> String {
        switch (self, market) {
        case (.trade, _): market.klinesPath
        case (_, .coinm): "/dapi/v1/" + endpointName
        default: futuresPath
        }
    }

    /// What a unit of the series is asked by: the index is a pair's, so a contract (`BTCUSD_PERP`, `BTCUSDT_240628`)
    /// stands for its pair (`BTCUSD`, `BTCUSDT`); every other series is the symbol's own.
    public func instrument(for symbol: Symbol) -> Symbol {
        guard self == .index, let underscore = symbol.name.firstIndex(of: "_"),
              let pair = try? Symbol(validating: String(symbol.name[..<underscore])) else { return symbol }
        return pair
    }

    /// The folder of the series in the archives (`data/futures/um/daily/markPriceKlines/...`).
    public var archiveFolder: String {
        switch self {
        case .trade: "klines"
        case .mark: "markPriceKlines"
        case .index: "indexPriceKlines"
        case .premium: "premiumIndexKlines"
        }
    }

    /// The prefix of the series' tables (`mark_klines_h1`; COIN-M's `coinm_mark_klines_h1`); trade klines keep their
    /// market's (`klines_`, `spot_klines_`, `coinm_klines_`).
    public func tablePrefix(market: Market) -> String {
        let coinm = market == .coinm ? "coinm_" : ""
        switch self {
        case .trade: return market.tablePrefix
        case .mark: return coinm + "mark_klines_"
        case .index: return coinm + "index_klines_"
        case .premium: return coinm + "premium_klines_"
        }
    }
}

/// One candle of a computed price series (mark, index, premium index), with exact decimal values.
///
/// Through the pipeline it travels as a `Kline` (`Kline(price:)`): the same resume, paging, open-candle and archive
/// logic serves every series. Its tables hold only these fields; the kline's volumes are never stored for it.
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
    /// The candle a `Kline` carries for a price series (see `Kline(price:)`).
    public init(carriedBy kline: Kline) {
        self.init(openTime: kline.openTime, open: kline.open, high: kline.high, low: kline.low, close: kline.close,
                  closeTime: kline.closeTime, basicDataCount: kline.numberOfTrades)
    }

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
