import BinanceAPI

/// A kline as read back from a store: decimals in the column's notation (trailing zeros to 18 places).
public struct StoredKline: Sendable, Equatable {
    public var openTime, closeTime: Int64
    public var open, high, low, close, volume, quoteAssetVolume: String
    public var numberOfTrades: Int64
    public var takerBuyBaseAssetVolume, takerBuyQuoteAssetVolume: String

    public init(openTime: Int64, closeTime: Int64, open: String, high: String, low: String, close: String, volume: String,
                quoteAssetVolume: String, numberOfTrades: Int64, takerBuyBaseAssetVolume: String, takerBuyQuoteAssetVolume: String) {
        self.openTime = openTime
        self.closeTime = closeTime
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.quoteAssetVolume = quoteAssetVolume
        self.numberOfTrades = numberOfTrades
        self.takerBuyBaseAssetVolume = takerBuyBaseAssetVolume
        self.takerBuyQuoteAssetVolume = takerBuyQuoteAssetVolume
    }

    /// Whether every field equals `kline`'s, value for value (decimal notation aside).
    public func matches(_ kline: Kline) -> Bool {
        func same(_ stored: String, _ sent: DecimalString) -> Bool {
            DecimalString.compare(DecimalString(unchecked: stored), sent) == 0
        }
        return openTime == kline.openTime && closeTime == kline.closeTime && same(open, kline.open)
            && same(high, kline.high) && same(low, kline.low) && same(close, kline.close) && same(volume, kline.volume)
            && same(quoteAssetVolume, kline.quoteAssetVolume) && numberOfTrades == kline.numberOfTrades
            && same(takerBuyBaseAssetVolume, kline.takerBuyBaseAssetVolume)
            && same(takerBuyQuoteAssetVolume, kline.takerBuyQuoteAssetVolume)
    }
}
