/// One candlestick as Binance serves it, with exact decimal values.
public struct Kline: Sendable, Equatable {
    public var openTime: Int64
    public var open: DecimalString
    public var high: DecimalString
    public var low: DecimalString
    public var close: DecimalString
    public var volume: DecimalString
    public var closeTime: Int64
    public var quoteAssetVolume: DecimalString
    public var numberOfTrades: Int64
    public var takerBuyBaseAssetVolume: DecimalString
    public var takerBuyQuoteAssetVolume: DecimalString

    public init(openTime: Int64, open: DecimalString, high: DecimalString, low: DecimalString, close: DecimalString,
                volume: DecimalString, closeTime: Int64, quoteAssetVolume: DecimalString, numberOfTrades: Int64,
                takerBuyBaseAssetVolume: DecimalString, takerBuyQuoteAssetVolume: DecimalString) {
        self.openTime = openTime
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.closeTime = closeTime
        self.quoteAssetVolume = quoteAssetVolume
        self.numberOfTrades = numberOfTrades
        self.takerBuyBaseAssetVolume = takerBuyBaseAssetVolume
        self.takerBuyQuoteAssetVolume = takerBuyQuoteAssetVolume
    }

    /// Checks the candle's own consistency: prices above zero, low <= open, close <= high, taker volumes within the
    /// volumes, a non-negative trade count, and for
    /// fixed intervals close_time = open_time + interval - 1 ms (Binance's close time is the last millisecond of
    /// the candle).
    public func validate(interval: KlineInterval) throws(KlineValidationError) {
        func fail(_ reason: String) -> KlineValidationError {
            KlineValidationError(openTime: openTime, reason: reason, values: self)
        }
        // What always holds for a Binance trade candle: prices above zero, low <= open, close <= high, and the taker
        // (buyer-initiated) part of each volume no larger than the volume.
        if DecimalString.compare(low, DecimalString.zero) <= 0 { throw fail("low \(low) is not above zero") }
        if DecimalString.compare(low, high) > 0 { throw fail("low \(low) is above high \(high)") }
        for (name, value) in [("open", open), ("close", close)] {
            if DecimalString.compare(value, low) < 0 { throw fail("\(name) \(value) is below low \(low)") }
            if DecimalString.compare(value, high) > 0 { throw fail("\(name) \(value) is above high \(high)") }
        }
        if numberOfTrades < 0 { throw fail("negative number of trades \(numberOfTrades)") }
        if DecimalString.compare(takerBuyBaseAssetVolume, volume) > 0 {
            throw fail("taker buy base volume \(takerBuyBaseAssetVolume) is above volume \(volume)")
        }
        if DecimalString.compare(takerBuyQuoteAssetVolume, quoteAssetVolume) > 0 {
            throw fail("taker buy quote volume \(takerBuyQuoteAssetVolume) is above quote volume \(quoteAssetVolume)")
        }
        let expectedOpen = interval.openTime(containing: openTime)
        if expectedOpen != openTime {
            throw fail("open time \(openTime) is not aligned to \(interval.rawValue)")
        }
        let expectedClose = interval.closeTime(forOpenTime: openTime)
        if closeTime != expectedClose {
            throw fail("close time \(closeTime) is not open time + \(interval.rawValue) - 1 ms (\(expectedClose))")
        }
    }

    /// A price series' candle as the pipeline carries it: its prices and times, the count of basic data in
    /// `numberOfTrades`, and zero volumes, which no table of a price series stores (see `KlineTable.columns`).
    public init(price: PriceKline) {
        self.init(openTime: price.openTime, open: price.open, high: price.high, low: price.low, close: price.close, volume: .zero,
                  closeTime: price.closeTime, quoteAssetVolume: .zero, numberOfTrades: price.basicDataCount,
                  takerBuyBaseAssetVolume: .zero, takerBuyQuoteAssetVolume: .zero)
    }

    /// `validate(interval:)` for the candle of `series`: a price series' candle is checked as one (`PriceKline.validate`).
    public func validate(interval: KlineInterval, series: PriceSeries) throws(KlineValidationError) {
        guard series != .trade else { return try validate(interval: interval) }
        do {
            try PriceKline(carriedBy: self).validate(interval: interval, series: series)
        } catch {
            throw KlineValidationError(openTime: openTime, reason: "\(series) price: \(error.reason)", values: self)
        }
    }

    /// Whether the candle is still open at `now` (its close time has not passed yet).
    public func isOpen(at now: Int64) -> Bool { closeTime >= now }
}

/// A kline that failed its consistency check; carries every value so the report shows them.
public struct KlineValidationError: Error, CustomStringConvertible, Equatable {
    public let openTime: Int64
    public let reason: String
    public let values: Kline

    public var description: String {
        "invalid kline at \(UTCCalendar.iso8601(openTime)): \(reason) "
            + "[open=\(values.open) high=\(values.high) low=\(values.low) close=\(values.close) "
            + "volume=\(values.volume) close_time=\(values.closeTime) trades=\(values.numberOfTrades)]"
    }
}
