/// A fault the simulator can inject into klines answers, to test how the client copes.
public enum FaultKind: String, Sendable, CaseIterable {
    /// HTTP 500 with Binance's `-1000` payload.
    case http500 = "500"
    /// HTTP 503 "Service Unavailable" with `-1001`.
    case http503 = "503"
    /// HTTP 502 with an HTML page, as a proxy in front of Binance answers.
    case html502 = "html"
    /// HTTP 408 with `-1007` "Timeout waiting for response from backend server."
    case http408 = "408"
    /// HTTP 429 with `-1003` and `Retry-After: retry` seconds; requests during that time count towards a ban.
    case http429 = "429"
    /// HTTP 418: the IP is banned for `retry` seconds; every request meanwhile gets 418 too.
    case http418 = "418"
    /// HTTP 400 with `-1100` (illegal characters in a parameter): a request issue, never worth retrying.
    case badParameter = "1100"
    /// Answers after a delay (`slowMilliseconds`).
    case slow
    /// Never answers (until the client gives up).
    case hang
    /// Sends the status line, headers and half of the body, then closes.
    case truncate
    /// Closes the connection after the headers, before any of the body.
    case reset

    // Answers that parse but lie, each in one way a real exchange (or a proxy, or a bug) has been seen to; they
    // break a rule Binance documents, so a client must refuse the whole page.
    /// klines: the page in descending order.
    case descending = "lie-descending"
    /// klines: one row of the page repeated.
    case duplicate = "lie-duplicate"
    /// klines: one candle in the middle of the page with high below low.
    case highBelowLow = "lie-high-low"
    /// klines and funding: one extra row about three years past the page.
    case farFuture = "lie-future"
    /// funding: one row naming another symbol.
    case wrongSymbol = "lie-symbol"
    /// aggTrades: one trade whose first trade id is after its last (`f > l`).
    case tradeIds = "lie-trade-ids"
    /// aggTrades: one trade whose time goes backwards.
    case tradeTimes = "lie-trade-times"

    /// The endpoints (`/klines` (every candle endpoint), `/fundingRate`, `/aggTrades`, `/futures/data` (the five
    /// trading data endpoints)) whose answers the fault applies to.
    public var endpoints: Set<String> {
        switch self {
        case .farFuture: ["/klines", "/fundingRate", "/futures/data"]
        case .wrongSymbol: ["/fundingRate", "/futures/data"]
        case .tradeIds, .tradeTimes: ["/aggTrades"]
        case .highBelowLow: ["/klines"]
        default: ["/klines", "/futures/data"]
        }
    }

    /// True for the faults that alter a correct answer instead of replacing it.
    public var isLie: Bool { rawValue.hasPrefix("lie-") }
}

/// Which requests get a fault: every `every`-th request to an endpoint the fault applies to (klines for transport
/// faults), at most `count` times (nil: no limit).
public struct FaultPlan: Sendable, Equatable {
    public var kind: FaultKind
    public var every: Int
    public var count: Int?
    public var slowMilliseconds: Int64
    /// `Retry-After` of the 429 and 418 faults, in seconds.
    public var retryAfterSeconds: Int64

    public init(kind: FaultKind, every: Int = 1, count: Int? = nil, slowMilliseconds: Int64 = 2_000, retryAfterSeconds: Int64 = 1) {
        self.kind = kind
        self.every = max(1, every)
        self.count = count
        self.slowMilliseconds = slowMilliseconds
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// Parses `KIND[:every=N][:count=N][:ms=N][:retry=S]`, e.g. `503:every=3:count=2` or `418:count=1:retry=600`.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":")
        guard let first = parts.first, let kind = FaultKind(rawValue: String(first)) else { return nil }
        self.init(kind: kind)
        for part in parts.dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let n = Int(kv[1]), n >= 0 else { return nil }
            switch kv[0] {
            case "every": every = max(1, n)
            case "count": count = n
            case "ms": slowMilliseconds = Int64(n)
            case "retry": retryAfterSeconds = Int64(n)
            default: return nil
            }
        }
    }
}
