/// A Binance market whose public REST API this project reads.
public enum Market: String, Sendable, CaseIterable, Codable {
    /// USD-M futures (`fapi.binance.com`).
    case futures
    /// Spot (`api.binance.com`).
    case spot
    /// COIN-M (coin-margined) futures (`dapi.binance.com`): perpetuals (`BTCUSD_PERP`) and delivery contracts
    /// (`BTCUSD_240628`), quoted in USD, margined and settled in the base asset; volumes count contracts.
    case coinm

    /// Path of the klines endpoint.
    public var klinesPath: String {
        switch self {
        case .futures: "/fapi/v1/klines"
        case .spot: "/api/v3/klines"
        case .coinm: "/dapi/v1/klines"
        }
    }

    /// Path of the exchange information endpoint (rate limits, symbols).
    public var exchangeInfoPath: String {
        switch self {
        case .futures: "/fapi/v1/exchangeInfo"
        case .spot: "/api/v3/exchangeInfo"
        case .coinm: "/dapi/v1/exchangeInfo"
        }
    }

    /// Default base URL of the public API.
    public var defaultBaseURL: String {
        switch self {
        case .futures: "https://fapi.binance.com"
        case .spot: "https://api.binance.com"
        case .coinm: "https://dapi.binance.com"
        }
    }

    /// Largest `limit` the klines endpoint accepts.
    /// Futures: "Default 500; max 1500." Spot: "Default 500; max 1000."
    /// (developers.binance.com, USD-M Futures "Kline/Candlestick Data"; Spot "Market data endpoints / klines").
    public var maxKlinesLimit: Int {
        switch self {
        case .futures, .coinm: 1500
        case .spot: 1000
        }
    }

    /// COIN-M klines: "Between startTime and endTime, the most recent limit data from endTime will be returned", and
    /// "The difference between startTime and endTime can only be up to 200 days" (COIN-M Futures, "Kline/Candlestick
    /// Data"). USD-M and spot answer the oldest `limit` from `startTime` on, with no cap on the span.
    public var klinesAnswerNewestFirst: Bool { self == .coinm }
    public var maxKlinesSpanMilliseconds: Int64? { self == .coinm ? 200 * 86_400_000 : nil }

    /// `limit` used when a request does not send one (both markets: 500).
    public var defaultKlinesLimit: Int { 500 }

    /// Request weight of one klines request with the given `limit`.
    ///
    /// Futures weight depends on LIMIT: [1,100) -> 1, [100,500) -> 2, [500,1000] -> 5, > 1000 -> 10 (COIN-M the same).
    /// Spot klines weigh 2 whatever the limit. (Binance API documentation, same pages as above.)
    public func klinesWeight(limit: Int) -> Int {
        switch self {
        case .spot:
            return 2
        case .futures, .coinm:
            switch limit {
            case ..<100: return 1
            case 100..<500: return 2
            case 500...1000: return 5
            default: return 10
            }
        }
    }

    /// The page size that buys the most klines per unit of weight: futures 499 (499 klines for weight 2,
    /// against 1000 for 5 or 1500 for 10), spot 1000 (weight 2 whatever the size).
    public var mostKlinesPerWeightLimit: Int {
        (1...maxKlinesLimit).max { a, b in
            // Compare a/wa < b/wb without division; ties go to the larger page (fewer requests).
            let lhs = a * klinesWeight(limit: b), rhs = b * klinesWeight(limit: a)
            return lhs == rhs ? a < b : lhs < rhs
        }!
    }

    /// Request weight of `exchangeInfo` for one symbol (futures 1; spot 20 for the whole list, 20 with `symbol` too).
    public var exchangeInfoWeight: Int {
        switch self {
        case .futures, .coinm: 1
        case .spot: 20
        }
    }

    /// Binance's documented default request-weight budget per IP (futures 2400/min, spot 6000/min), used until
    /// `exchangeInfo` says otherwise.
    public var defaultWeightLimit: RateLimitRule {
        switch self {
        case .futures, .coinm: RateLimitRule(limit: 2400, windowMilliseconds: 60_000)
        case .spot: RateLimitRule(limit: 6000, windowMilliseconds: 60_000)
        }
    }

    /// Prefix of this market's kline tables: futures keep the names existing consumers read (`klines_m1`),
    /// spot tables are `spot_klines_m1`, so spot rows never collide with futures rows.
    public var tablePrefix: String {
        switch self {
        case .futures: "klines_"
        case .spot: "spot_klines_"
        case .coinm: "coinm_klines_"
        }
    }

    /// What the market is called in messages.
    public var displayName: String {
        switch self {
        case .futures: "USD-M futures"
        case .spot: "spot"
        case .coinm: "COIN-M futures"
        }
    }

    /// Whether the market has perpetual funding rates (`/fapi/v1/fundingRate`, `/dapi/v1/fundingRate`).
    public var hasFunding: Bool { self != .spot }

    /// Path of the funding rate history endpoint.
    public var fundingRatePath: String { self == .coinm ? "/dapi/v1/fundingRate" : FundingRate.path }
}
