/// Binance's error payload: `{"code": -1121, "msg": "Invalid symbol."}`
/// (Binance API documentation, "General API Information": any endpoint can return an ERROR).
public struct BinanceErrorPayload: Sendable, Equatable, Codable {
    public let code: Int
    public let msg: String
    public init(code: Int, msg: String) { self.code = code; self.msg = msg }
}

/// Binance error codes this project reacts to (Binance API documentation, "Error Codes").
public enum BinanceErrorCode {
    /// UNKNOWN: an unknown error occurred while processing the request.
    public static let unknown = -1000
    /// DISCONNECTED: internal error; unable to process your request. Please try again.
    public static let disconnected = -1001
    /// TOO_MANY_REQUESTS: too much request weight used.
    public static let tooManyRequests = -1003
    /// TIMEOUT: timeout waiting for response from backend server.
    public static let timeout = -1007
    /// ILLEGAL_CHARS and the rest of the 11xx "request issues" family.
    public static let illegalChars = -1100
    /// MANDATORY_PARAM_EMPTY_OR_MALFORMED.
    public static let mandatoryParamEmptyOrMalformed = -1102
    /// BAD_INTERVAL.
    public static let badInterval = -1120
    /// BAD_SYMBOL: invalid symbol.
    public static let badSymbol = -1121
    /// INVALID_PARAMETER / start time greater than end time.
    public static let invalidParameter = -1130

    /// Whether a code means "the request was fine, try again later".
    public static func isTransient(_ code: Int) -> Bool {
        code == unknown || code == disconnected || code == timeout
    }

    /// Whether a code means the request itself is wrong (the 11xx family): retrying cannot help.
    public static func isRequestIssue(_ code: Int) -> Bool {
        (-1199)...(-1100) ~= code
    }
}

/// What went wrong with a Binance request, classified for the supervisor.
public enum BinanceError: Error, CustomStringConvertible, Sendable {
    /// A JSON error payload with an HTTP status.
    case api(status: Int, payload: BinanceErrorPayload)
    /// HTTP 429: the request-weight budget is spent; back off for `retryAfterSeconds`.
    case rateLimited(retryAfterSeconds: Int?)
    /// HTTP 418: the IP is banned until `retryAfterSeconds` have passed; `until` is the ban's end (Unix ms) when
    /// the run gives up waiting for it.
    case banned(retryAfterSeconds: Int?, until: Int64? = nil)
    /// The exchange has been failing for longer than the run is willing to wait (the circuit breaker stayed open).
    case exchangeUnavailable(since: Int64, lastError: String)
    /// A status without a Binance payload (an HTML error page from a proxy, an empty 5xx).
    case unexpectedStatus(status: Int, bodyPrefix: String)
    /// A 200 whose body is not what the endpoint returns (truncated, not JSON, wrong shape).
    case malformedBody(String)
    /// A kline that failed its consistency check.
    case invalidKline(KlineValidationError)

    /// Whether the same request may succeed if sent again later.
    public var isRetryable: Bool {
        switch self {
        case .api(let status, let payload):
            if BinanceErrorCode.isRequestIssue(payload.code) || meansNotBinance { return false }
            return status >= 500 || status == 408 || BinanceErrorCode.isTransient(payload.code)
        case .rateLimited, .banned: return true
        case .exchangeUnavailable: return false
        case .unexpectedStatus(let status, _): return status >= 500 || status == 408
        case .malformedBody: return true
        // A candle that breaks what always holds on Binance is a bad answer: asked again, then the unit fails.
        case .invalidKline: return true
        }
    }

    /// The URL is not Binance's REST API at all: the path is unknown to the server (404, 405, 410), which no retry
    /// changes. (Binance answers an unknown path with 404.)
    public var meansNotBinance: Bool {
        switch self {
        case .api(let status, _), .unexpectedStatus(let status, _): [404, 405, 410].contains(status)
        default: false
        }
    }

    public var description: String {
        switch self {
        case .api(let status, let payload):
            var text = "Binance answered HTTP \(status) with code \(payload.code): \(payload.msg)"
            if payload.code == BinanceErrorCode.badSymbol {
                text += " (the symbol is not listed on this market: unknown, or delisted; data already stored stays. Check --symbols and --market)"
            }
            return text
        case .rateLimited(let s):
            return "Binance answered HTTP 429 (request weight exhausted)" + (s.map { "; retry after \($0) s" } ?? "")
        case .banned(let s, let until):
            if let until {
                return "Binance banned this IP (HTTP 418) until \(UTCCalendar.iso8601(until)); the run stops instead of waiting "
                    + "that long (--max-ban-wait). Requests resume after the ban; check that no other process on this IP "
                    + "spends the same weight budget"
            }
            return "Binance answered HTTP 418: this IP is banned" + (s.map { " for \($0) s" } ?? "")
        case .exchangeUnavailable(let since, let last):
            return "Binance has been failing since \(UTCCalendar.iso8601(since)) (last error: \(last)); the circuit breaker "
                + "stayed open longer than --max-outage-wait, so the run stops. The next run continues where the data stops"
        case .unexpectedStatus(let status, let prefix):
            return "Binance answered HTTP \(status) without an error payload: \(prefix)"
        case .malformedBody(let reason):
            return "Binance answered with a body that is not a valid response: \(reason)"
        case .invalidKline(let error):
            return error.description
        }
    }
}
