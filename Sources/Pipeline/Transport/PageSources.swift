import BinanceAPI

// Where each dataset's REST pages come from: Binance over HTTP in production (`BinanceClient`, which spends the
// weight, retries, breaks the circuit and checks each page against Binance's documented rules), fakes in unit
// tests. The extractors and the gap filler see only these protocols.

/// Candles of every series.
public protocol KlineSource: Sendable {
    func klines(_ request: KlinesRequest) async throws -> [Kline]
}

/// Funding rates of a perpetual: funding time in `[startTime, endTime]`, oldest first, at most `limit`.
public protocol FundingSource: Sendable {
    func fundingRates(symbol: Symbol, startTime: Int64, endTime: Int64, limit: Int) async throws -> [FundingRate]
}

/// Aggregate trades: from an id (`fromId`), or within a window shorter than an hour; ascending ids, at most `limit`.
public protocol TradeSource: Sendable {
    func aggTrades(symbol: Symbol, fromId: Int64?, startTime: Int64?, endTime: Int64?, limit: Int) async throws -> [AggTrade]
}

/// One window of one of the five trading data endpoints (USD-M): its rows' times and values in `[startTime, endTime]`.
public protocol MetricsSource: Sendable {
    func metrics(_ endpoint: FuturesMetrics.Endpoint, symbol: Symbol, startTime: Int64, endTime: Int64, limit: Int) async throws
        -> [(Int64, [DecimalString])]
}

extension FundingSource {
    public func fundingRates(symbol: Symbol, startTime: Int64, endTime: Int64) async throws -> [FundingRate] {
        try await fundingRates(symbol: symbol, startTime: startTime, endTime: endTime, limit: FundingRate.maxLimit)
    }
}

extension TradeSource {
    public func aggTrades(symbol: Symbol, fromId: Int64? = nil, startTime: Int64? = nil, endTime: Int64? = nil) async throws -> [AggTrade] {
        try await aggTrades(symbol: symbol, fromId: fromId, startTime: startTime, endTime: endTime, limit: AggTrade.maxLimit)
    }
}

extension MetricsSource {
    public func metrics(_ endpoint: FuturesMetrics.Endpoint, symbol: Symbol, startTime: Int64, endTime: Int64) async throws
        -> [(Int64, [DecimalString])] {
        try await metrics(endpoint, symbol: symbol, startTime: startTime, endTime: endTime, limit: FuturesMetrics.maxLimit)
    }
}

/// Every page source of a market at once: what a job's units and its gap filler are given.
public typealias BinanceSource = KlineSource & FundingSource & TradeSource & MetricsSource
