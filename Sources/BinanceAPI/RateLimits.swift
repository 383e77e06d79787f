/// A request-weight rule: at most `limit` weight per fixed window of `windowMilliseconds`.
public struct RateLimitRule: Sendable, Equatable, CustomStringConvertible {
    public var limit: Int
    public var windowMilliseconds: Int64

    public init(limit: Int, windowMilliseconds: Int64) {
        self.limit = limit
        self.windowMilliseconds = windowMilliseconds
    }

    public var description: String { "\(limit) weight per \(Double(windowMilliseconds) / 1000) s" }

    /// The response header that reports the weight used in this rule's window:
    /// `X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)`, letters S, M, H, D
    /// (Binance API documentation, "LIMITS / IP Limits").
    public var usedWeightHeader: String {
        let (num, letter) = Self.intervalNumAndLetter(windowMilliseconds)
        return "x-mbx-used-weight-\(num)\(letter)"
    }

    static func intervalNumAndLetter(_ ms: Int64) -> (Int64, String) {
        if ms % 86_400_000 == 0 { return (ms / 86_400_000, "d") }
        if ms % 3_600_000 == 0 { return (ms / 3_600_000, "h") }
        if ms % 60_000 == 0 { return (ms / 60_000, "m") }
        return (max(1, ms / 1000), "s")
    }

    /// Window length for an `exchangeInfo` rate limit interval (`SECOND`, `MINUTE`, `HOUR`, `DAY`) and number.
    public static func windowMilliseconds(interval: String, intervalNum: Int) -> Int64? {
        let unit: Int64
        switch interval {
        case "SECOND": unit = 1000
        case "MINUTE": unit = 60_000
        case "HOUR": unit = 3_600_000
        case "DAY": unit = 86_400_000
        default: return nil
        }
        return unit * Int64(intervalNum)
    }
}

/// What a response's headers say about the weight budget.
public struct WeightHeaders: Sendable, Equatable {
    /// Weight used in the current window, per window length in ms.
    public var usedWeight: [Int64: Int]
    /// `Retry-After`, in seconds, on 429 and 418 answers.
    public var retryAfterSeconds: Int?

    public init(usedWeight: [Int64: Int] = [:], retryAfterSeconds: Int? = nil) {
        self.usedWeight = usedWeight
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// Reads `x-mbx-used-weight-1m` style headers and `retry-after` from lower-cased header names.
    public init(headers: [String: String]) {
        var used: [Int64: Int] = [:]
        let prefix = "x-mbx-used-weight-"
        for (name, value) in headers where name.hasPrefix(prefix) {
            let spec = name.dropFirst(prefix.count)
            guard let letter = spec.last, let num = Int64(spec.dropLast()), let weight = Int(value.trimmed) else { continue }
            let unit: Int64
            switch letter {
            case "s", "S": unit = 1000
            case "m", "M": unit = 60_000
            case "h", "H": unit = 3_600_000
            case "d", "D": unit = 86_400_000
            default: continue
            }
            used[num * unit] = weight
        }
        usedWeight = used
        retryAfterSeconds = headers["retry-after"].flatMap { Int($0.trimmed) }
    }
}

/// The parts of `exchangeInfo` this project reads.
public struct ExchangeInfo: Sendable, Decodable {
    public struct RateLimit: Sendable, Decodable {
        public let rateLimitType: String
        public let interval: String
        public let intervalNum: Int
        public let limit: Int
    }
    /// A listed symbol. USD-M and spot say `status`; COIN-M says `contractStatus`, with the contract's `pair`,
    /// `contractType` (PERPETUAL, CURRENT_QUARTER, NEXT_QUARTER) and `deliveryDate`.
    public struct SymbolInfo: Sendable, Decodable {
        public let symbol: String
        public let status: String?
        public let contractStatus: String?
        public let pair: String?
        public let contractType: String?
        public let deliveryDate: Int64?
    }
    public let serverTime: Int64
    public let rateLimits: [RateLimit]
    public let symbols: [SymbolInfo]?

    /// The REQUEST_WEIGHT rules (Binance may publish more than one window).
    public var weightRules: [RateLimitRule] {
        rateLimits.compactMap { rule in
            guard rule.rateLimitType == "REQUEST_WEIGHT",
                  let ms = RateLimitRule.windowMilliseconds(interval: rule.interval, intervalNum: rule.intervalNum)
            else { return nil }
            return RateLimitRule(limit: rule.limit, windowMilliseconds: ms)
        }
    }
}

extension String {
    var trimmed: String { trimmingSpaces }
}
