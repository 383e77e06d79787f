/// One GET of a klines page: where it goes and what it weighs.
public struct KlinesRequest: Sendable, Equatable {
    public var market: Market
    public var symbol: Symbol
    public var interval: KlineInterval
    public var startTime: Int64?
    public var endTime: Int64?
    public var limit: Int
    /// Which candles: the trades' (default), or a price series Binance computes (USD-M only).
    public var series: PriceSeries

    public init(market: Market, symbol: Symbol, interval: KlineInterval, startTime: Int64?, endTime: Int64?, limit: Int,
                series: PriceSeries = .trade) {
        self.series = series
        self.market = market
        self.symbol = symbol
        self.interval = interval
        self.startTime = startTime
        self.endTime = endTime
        self.limit = limit
    }

    /// The request's weight, decided by the endpoint and the `limit` sent. Mark, index and premium index klines:
    /// "Request Weight: based on parameter LIMIT", the same steps as the trade klines (USD-M Futures, Market Data).
    public var weight: Int { market.klinesWeight(limit: limit) }

    /// Path and query, e.g. `/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=...&endTime=...&limit=499`, or
    /// `/fapi/v1/indexPriceKlines?pair=BTCUSDT&...` (the index is a pair's). Symbols are validated to `[A-Z0-9-_.]`
    /// and intervals come from a fixed list, so nothing needs escaping.
    public var pathAndQuery: String {
        series.path(on: market) + "?" + Self.query(instrument: series.instrumentParameter, symbol, interval: interval, startTime: startTime,
                                                   endTime: endTime, limit: limit)
    }

    /// The query every candle endpoint takes: `symbol=…` (or `pair=…`), `interval`, the optional times and `limit`.
    static func query(instrument parameter: String, _ name: Symbol, interval: KlineInterval, startTime: Int64?, endTime: Int64?,
                      limit: Int) -> String {
        var query = "\(parameter)=\(name.name)&interval=\(interval.rawValue)"
        if let startTime { query += "&startTime=\(startTime)" }
        if let endTime { query += "&endTime=\(endTime)" }
        return query + "&limit=\(limit)"
    }
}
