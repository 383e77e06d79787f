import BinanceAPI
import Clocks
import Foundation
import HTTPTransport
import Logging
import Telemetry
import Tracing

/// Binance's public REST API for one market, endpoint by endpoint: builds each request, parses and checks each page
/// against Binance's documented rules, and sends it through the market's `BinanceTransport` (weight, retries, breaker,
/// spans). The page sources (`KlineSource`, `FundingSource`, `TradeSource`, `MetricsSource`) the extractors see.
public final class BinanceClient: BinanceSource, Sendable {
    public let market: Market
    public var baseURL: String { transport.baseURL }
    public var limiter: RateLimiter { transport.limiter }
    public var breaker: CircuitBreaker { transport.breaker }
    /// The funding rate endpoint's own limit: 500 requests per 5 minutes per IP, on top of the weight budget.
    public let fundingRequests: RateLimiter
    /// The trading data endpoints' own limit (`/futures/data/*`: weight 0, 1000 requests per 5 minutes per IP).
    public let tradingDataRequests: RateLimiter
    public let transport: BinanceTransport
    private let clock: any WallClock

    public init(market: Market, baseURL: String, http: any HTTPClient, limiter: RateLimiter, clock: any WallClock,
                breaker: CircuitBreaker? = nil, backoff: Backoff = Backoff(), maxAttempts: Int = 5,
                logger: Logger = Logger(label: "binance")) {
        transport = BinanceTransport(market: market, baseURL: baseURL, http: http, limiter: limiter, clock: clock, breaker: breaker,
                                     backoff: backoff, maxAttempts: maxAttempts, logger: logger)
        fundingRequests = RateLimiter(market: market, rule: FundingRate.requestRule, clock: clock)
        tradingDataRequests = RateLimiter(market: market, rule: FuturesMetrics.requestRule, clock: clock)
        self.market = market
        self.clock = clock
    }

    /// The symbols `exchangeInfo` listed when the run read it (empty until then, or when it could not be read).
    public var listedSymbols: [ExchangeInfo.SymbolInfo] { listed.value }
    private let listed = LockedValue<[ExchangeInfo.SymbolInfo]>([])

    /// Requests sent, retries, and answers by status, for the summary.
    public var requestStats: RequestStats.Snapshot { transport.requestStats }

    /// Reads the published weight limit and server time, and adopts them in the rate limiter.
    public func synchroniseLimits() async throws {
        let body = try await send(path: market.exchangeInfoPath, weight: market.exchangeInfoWeight)
        let info: ExchangeInfo
        do {
            info = try JSONDecoder().decode(ExchangeInfo.self, from: Data(body))
        } catch {
            throw BinanceError.malformedBody("exchangeInfo could not be read: \(error)")
        }
        listed.value = info.symbols ?? []
        // Several REQUEST_WEIGHT windows may be published; the shortest one paces us (the others are looser).
        if let rule = info.weightRules.min(by: { $0.windowMilliseconds < $1.windowMilliseconds }) {
            await limiter.configure(rule: rule, serverTime: info.serverTime)
        }
    }

    public func klines(_ request: KlinesRequest) async throws -> [Kline] {
        let body = try await send(path: request.pathAndQuery, weight: request.weight)
        do {
            guard request.series != .trade else { return try KlinePageParser().parse(body) }
            return try KlinePageParser().parsePrices(body, series: request.series).map(Kline.init(price:))
        } catch {
            throw BinanceError.malformedBody("\(error)")
        }
    }

    /// One page of funding rates (USD-M, and COIN-M perpetuals): funding time in [startTime, endTime], oldest first.
    public func fundingRates(symbol: Symbol, startTime: Int64, endTime: Int64, limit: Int) async throws -> [FundingRate] {
        let path = FundingRate.pathAndQuery(market: market, symbol: symbol, startTime: startTime, endTime: endTime, limit: limit)
        let body = try await send(path: path, weight: FundingRate.weight, extraLimiter: fundingRequests)
        let page = try FundingRate.parse(body, symbol: symbol)
        try FundingRate.check(page, startTime: startTime, endTime: endTime, limit: limit)
        return page
    }

    /// One window of one trading data endpoint (USD-M): its rows with time in [startTime, endTime], checked
    /// (`FuturesMetrics.Endpoint.parse`). Weight 0; paced by the endpoints' own per-IP limit.
    public func metrics(_ endpoint: FuturesMetrics.Endpoint, symbol: Symbol, startTime: Int64, endTime: Int64,
                        limit: Int) async throws -> [(Int64, [DecimalString])] {
        let body = try await send(path: endpoint.pathAndQuery(symbol: symbol, startTime: startTime, endTime: endTime, limit: limit), weight: 0,
                                  extraLimiter: tradingDataRequests)
        return try endpoint.parse(body, symbol: symbol, startTime: startTime, endTime: endTime, limit: limit)
    }

    /// One page of aggregate trades, from an id (`fromId`) or within a window shorter than one hour.
    public func aggTrades(symbol: Symbol, fromId: Int64?, startTime: Int64?, endTime: Int64?, limit: Int) async throws -> [AggTrade] {
        var query = "symbol=\(symbol.name)"
        if let fromId { query += "&fromId=\(fromId)" }
        if let startTime { query += "&startTime=\(startTime)" }
        if let endTime { query += "&endTime=\(endTime)" }
        query += "&limit=\(limit)"
        let body = try await send(path: market.aggTradesPath + "?" + query, weight: market.aggTradesWeight)
        let page = try AggTrade.parse(body)
        // Binance's clock may run a little ahead of ours: a trade up to a minute past our now is not a lie.
        try AggTrade.check(page, fromId: fromId, limit: limit, latest: clock.now() + 60_000)
        if let startTime, let endTime, let outside = page.first(where: { $0.time < startTime || $0.time > endTime }) {
            throw BinanceError.malformedBody("aggregate trade \(outside.id) at \(UTCCalendar.iso8601(outside.time)) is outside the requested window")
        }
        return page
    }

    func send(path: String, weight: Int, extraLimiter: RateLimiter? = nil) async throws -> [UInt8] {
        try await transport.send(path: path, weight: weight, extraLimiter: extraLimiter)
    }
}

/// A value shared between tasks.
final class LockedValue<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// Counters of one client's requests.
public final class RequestStats: @unchecked Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var sent = 0
        public var retries = 0
        public var byStatus: [Int: Int] = [:]
    }
    private let lock = NSLock()
    private var value = Snapshot()

    func sent() { lock.withLock { value.sent += 1 } }
    func retried() { lock.withLock { value.retries += 1 } }
    func answered(status: Int) { lock.withLock { value.byStatus[status, default: 0] += 1 } }
    public var snapshot: Snapshot { lock.withLock { value } }
}
