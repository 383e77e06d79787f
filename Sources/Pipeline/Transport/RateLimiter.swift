import BinanceAPI
import Clocks
import Telemetry
import Tracing

/// The Binance request-weight budget of one market, shared by every task of the process.
///
/// Tasks call `acquire(weight:)` before each request and `record(...)` with the answer's headers. The limiter
/// holds tasks while the window is spent, and every task after a 429 or 418 until `Retry-After` has passed.
/// Decisions are made by `WeightBudget`; this actor only serialises them and waits on the injected clock.
public actor RateLimiter {
    public let market: Market
    private var budget: WeightBudget
    private let clock: any WallClock
    /// Server time minus local time, from `exchangeInfo`'s `serverTime`, so windows line up with Binance's.
    private var serverOffset: Int64 = 0

    /// Weight granted so far, and time tasks spent waiting for weight (ms, summed over tasks).
    public private(set) var weightGranted = 0
    public private(set) var waitedMilliseconds: Int64 = 0
    public private(set) var holds = 0
    /// How long a 418 ban may hold the run before it gives up (`--max-ban-wait`).
    public let maxBanWaitMilliseconds: Int64
    /// Set when a ban outlasts `maxBanWaitMilliseconds`: no request is issued any more (local time, ms).
    public private(set) var bannedUntil: Int64?

    public init(market: Market, rule: RateLimitRule, clock: any WallClock, maxBanWaitMilliseconds: Int64 = 300_000, share: Double = 1,
                concurrency: Int = 1) {
        self.market = market
        // Room for another job's first request on the same IP: its exchangeInfo.
        budget = WeightBudget(rule: rule, share: share, concurrency: concurrency, newcomerRoom: market.exchangeInfoWeight)
        self.clock = clock
        self.maxBanWaitMilliseconds = maxBanWaitMilliseconds
    }

    public var rule: RateLimitRule { budget.rule }
    /// The weight per window this process may spend (its share of the rule's limit).
    public var ownLimit: Int { budget.ownLimit }

    /// Adopts the rule and clock offset Binance published. The count the `exchangeInfo` answer carried (every
    /// process on the IP, this minute) is then read again in the new rule's terms: its header is named after the
    /// published window (`X-MBX-USED-WEIGHT-1m`, or `-4s` on a test server), which the default rule may not have
    /// matched, and a process started while another spends the IP's weight must start from that count.
    public func configure(rule: RateLimitRule, serverTime: Int64?) {
        if let serverTime { serverOffset = serverTime - clock.now() }
        budget.update(rule: rule, now: clock.now() + serverOffset)
        if let used = lastAnswer?.usedWeight[rule.windowMilliseconds] {
            budget.observe(usedWeight: used, grantedIn: budget.windowStart)
        }
    }

    /// The last answer's weight headers, for `configure`.
    private var lastAnswer: WeightHeaders?

    /// Waits until `weight` fits the budget, then counts it. Returns the window it was counted in.
    public func acquire(weight: Int) async throws -> Int64 {
        let started = clock.now()
        while true {
            try Task.checkCancellation()
            if let bannedUntil {
                // Binance: keep sending while banned and the ban grows. Stop issuing requests at once.
                throw BinanceError.banned(retryAfterSeconds: Int((bannedUntil - clock.now() + 999) / 1000), until: bannedUntil)
            }
            switch budget.reserve(weight, now: clock.now() + serverOffset) {
            case .granted(let window):
                weightGranted += weight
                waitedMilliseconds += clock.now() - started
                return window
            case .waitUntil(let serverDeadline):
                // The wait shows in the trace as a child of the unit waiting.
                let from = clock.now()
                try await withSpan("rate limit wait", ofKind: .internal) { span in
                    span.attributes["binance.market"] = market.rawValue
                    span.attributes["binance.request.weight"] = Int64(weight)
                    span.attributes["binance.weight.limit"] = Int64(budget.rule.limit)
                    try await clock.sleep(until: serverDeadline - serverOffset)
                }
                RunPipelineMetrics.current.waitedForWeight(seconds: Double(clock.now() - from) / 1000, market: market)
            }
        }
    }

    /// Takes in what an answer said: the used weight, and a hold on 429 / 418. Returns false when the answer was a
    /// ban longer than the run may wait: from then on `acquire` throws.
    @discardableResult
    public func record(headers: WeightHeaders, status: Int, grantedIn window: Int64) -> Bool {
        lastAnswer = headers
        if let used = headers.usedWeight[budget.rule.windowMilliseconds] {
            budget.observe(usedWeight: used, grantedIn: window)
        }
        guard status == 429 || status == 418 else { return true }
        holds += 1
        let now = clock.now() + serverOffset
        let until: Int64
        if let seconds = headers.retryAfterSeconds {
            until = now + Int64(seconds) * 1000
        } else {
            // Without Retry-After: a 429 waits for the next window; a ban is at least 2 minutes
            // (Binance: "from 2 minutes to 3 days").
            until = status == 418 ? now + 120_000 : window + budget.rule.windowMilliseconds
        }
        if status == 418 && until - now > maxBanWaitMilliseconds {
            bannedUntil = until - serverOffset
            return false
        }
        budget.hold(until: until)
        return true
    }
}
