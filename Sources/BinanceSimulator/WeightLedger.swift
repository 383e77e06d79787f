import BinanceAPI

/// The simulator's per-IP weight accounting, as Binance documents it ("LIMITS", developers.binance.com):
/// - every route has a weight; the weight used in the current window is returned in
///   `X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)` on every answer;
/// - a request that would pass the limit gets HTTP 429 (code -1003) with `Retry-After`, the seconds until the
///   window ends;
/// - "Repeatedly violating rate limits and/or failing to back off after receiving 429s will result in an automated
///   IP ban (HTTP status 418)"; "IP bans ... scale in duration for repeat offenders, from 2 minutes to 3 days";
///   the 418 carries `Retry-After` until the ban is over.
/// Windows are fixed and aligned to the epoch (a minute window resets at each full minute).
struct WeightLedger: Sendable {
    var rule: RateLimitRule
    /// Requests sent while told to back off (after a 429, before its Retry-After) that trigger a ban.
    var requestsBeforeBan: Int
    /// First ban length; each further ban doubles it, up to three days.
    var firstBanMilliseconds: Int64

    private(set) var windowStart: Int64 = .min
    private(set) var used = 0
    private var backOffUntil: Int64 = .min
    private var ignoredBackOffs = 0
    private(set) var bannedUntil: Int64 = .min
    private var bans = 0

    /// Binance does not publish how many requests after a 429 earn a ban. Requests already in flight when the 429
    /// was sent are not a failure to back off, so the default leaves room for a few of them (`--requests-before-ban`).
    init(rule: RateLimitRule, requestsBeforeBan: Int = 5, firstBanMilliseconds: Int64 = 120_000) {
        self.rule = rule
        self.requestsBeforeBan = requestsBeforeBan
        self.firstBanMilliseconds = firstBanMilliseconds
    }

    enum Verdict: Equatable {
        case allowed
        case tooManyRequests(retryAfterSeconds: Int64)
        case banned(until: Int64, retryAfterSeconds: Int64)
    }

    mutating func roll(_ now: Int64) {
        let start = now - now % rule.windowMilliseconds
        if start != windowStart {
            windowStart = start
            used = 0
        }
    }

    /// Decides on one request of `weight` at `now`, counting it if allowed.
    mutating func admit(weight: Int, now: Int64) -> Verdict {
        roll(now)
        if now < bannedUntil {
            return .banned(until: bannedUntil, retryAfterSeconds: Self.ceilSeconds(bannedUntil - now))
        }
        if now < backOffUntil {
            ignoredBackOffs += 1
            if ignoredBackOffs >= requestsBeforeBan {
                let length = min(firstBanMilliseconds << Int64(min(bans, 20)), 3 * 86_400_000)
                bans += 1
                bannedUntil = now + length
                ignoredBackOffs = 0
                return .banned(until: bannedUntil, retryAfterSeconds: Self.ceilSeconds(length))
            }
        }
        if used + weight > rule.limit {
            let end = windowStart + rule.windowMilliseconds
            backOffUntil = end
            return .tooManyRequests(retryAfterSeconds: Self.ceilSeconds(end - now))
        }
        used += weight
        return .allowed
    }

    /// A 429 the simulator was told to answer: from now on the client must wait `seconds`.
    mutating func imposeBackOff(seconds: Int64, now: Int64) {
        backOffUntil = max(backOffUntil, now + seconds * 1000)
    }

    /// A ban the simulator was told to impose.
    mutating func imposeBan(seconds: Int64, now: Int64) -> Int64 {
        bans += 1
        bannedUntil = max(bannedUntil, now + seconds * 1000)
        return bannedUntil
    }

    static func ceilSeconds(_ ms: Int64) -> Int64 { max(1, (ms + 999) / 1000) }
}
