/// A fault the simulator can inject into klines answers, to test how the client copes.
public enum FaultKind: String, Sendable, CaseIterable {
    /// HTTP 500 with Binance's `-1000` payload.
    case http500 = "500"
    /// HTTP 503 "Service Unavailable" with `-1001`.
    case http503 = "503"
    /// HTTP 502 with an HTML page, as a proxy in front of Binance answers.
    case html502 = "html"
    /// Answers after a delay (`slowMilliseconds`).
    case slow
    /// Never answers (until the client gives up).
    case hang
    /// Sends the status line, headers and half of the body, then closes.
    case truncate
    /// Closes the connection after the headers, before any of the body.
    case reset
}

/// Which requests get a fault: every `every`-th klines request, at most `count` times (nil: no limit).
public struct FaultPlan: Sendable, Equatable {
    public var kind: FaultKind
    public var every: Int
    public var count: Int?
    public var slowMilliseconds: Int64

    public init(kind: FaultKind, every: Int = 1, count: Int? = nil, slowMilliseconds: Int64 = 2_000) {
        self.kind = kind
        self.every = max(1, every)
        self.count = count
        self.slowMilliseconds = slowMilliseconds
    }

    /// Parses `KIND[:every=N][:count=N][:ms=N]`, e.g. `503:every=3:count=2`.
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
            default: return nil
            }
        }
    }
}
