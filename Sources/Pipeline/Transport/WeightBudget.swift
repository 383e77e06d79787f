import BinanceAPI

/// The request-weight budget of one market, as a value: decides whether a request may go now or must wait.
///
/// Binance counts weight per IP in fixed windows (`X-MBX-USED-WEIGHT-1m`: the weight used in the current
/// minute) and answers 429 once a request would pass the limit (Binance API documentation, "LIMITS"). The budget
/// reserves a request's weight before it is sent, so concurrent tasks never overspend, and raises its count to
/// whatever the server reports, so weight spent by other processes on the same IP is respected too.
public struct WeightBudget: Sendable, Equatable {
    public private(set) var rule: RateLimitRule
    /// Start of the window `used` belongs to (server time, ms).
    public private(set) var windowStart: Int64 = .min
    /// Weight this process reserved in that window.
    public private(set) var used = 0
    /// Weight the server reports for that window: every process on the IP together.
    public private(set) var serverUsed = 0
    /// Of the server's count, what other processes on the IP spent in that window: the most any answer reported beyond
    /// all the weight this process had reserved when the answer came (so reordered answers of its own never count as
    /// someone else's). A process started while another one runs learns it from its very first answer
    /// (`exchangeInfo`), before it fans out.
    public private(set) var othersUsed = 0
    /// This process's share of the IP's budget (pods of one Indexed Job behind one egress IP split it).
    public var share: Double = 1
    /// No request before this moment (after a 429 or a 418).
    public private(set) var holdUntil: Int64 = .min
    /// Weight granted so close to the end of a window that the server may count it in the next one.
    private var carry = 0
    /// Requests this process may have in flight at once (its workers).
    public var concurrency = 1
    /// The heaviest request granted so far.
    private var heaviest = 0
    /// Weight never spent by this process, whatever it knows: room for the first request of a process it has not
    /// seen yet (a job started on the same IP asks `exchangeInfo` first). Without it, a process spending the whole
    /// window leaves a newcomer's first request a 429 (and its retry at the next window another), before the newcomer
    /// has any answer to learn the count from.
    public var newcomerRoom = 0

    public enum Decision: Sendable, Equatable {
        /// Send now; the weight was counted in the window starting at `window`.
        case granted(window: Int64)
        /// Ask again at this moment.
        case waitUntil(Int64)
    }

    public init(rule: RateLimitRule, share: Double = 1, concurrency: Int = 1, newcomerRoom: Int = 0) {
        self.rule = rule
        self.share = min(max(share, 0.001), 1)
        self.concurrency = max(1, concurrency)
        self.newcomerRoom = max(0, newcomerRoom)
    }

    /// The part of the limit this process may spend.
    public var ownLimit: Int { max(1, Int((Double(rule.limit) * share).rounded(.down))) }

    /// Requests granted this close to a window's end may reach Binance in the next window.
    var boundaryGuardMilliseconds: Int64 { min(rule.windowMilliseconds / 20, 1_000) }

    private mutating func roll(to now: Int64) {
        let start = now - ((now % rule.windowMilliseconds) + rule.windowMilliseconds) % rule.windowMilliseconds
        if start > windowStart {
            // A request sent at the very end of the last window may be counted by the server in this one.
            used = start == windowStart + rule.windowMilliseconds ? carry : 0
            serverUsed = 0
            othersUsed = 0
            windowStart = start
            carry = 0
        }
    }

    /// Reserves `weight` at `now` if the window has room and no hold is in force.
    public mutating func reserve(_ weight: Int, now: Int64) -> Decision {
        if now < holdUntil { return .waitUntil(holdUntil) }
        roll(to: now)
        // A request heavier than the whole limit could never go; let it through alone at the start of a window
        // rather than wait forever (Binance then decides).
        // Our own share, and the IP's whole budget as the server counts it.
        // With another process seen on the IP, leave room for its requests in flight (which no answer has counted
        // yet): as many as this process may have in flight, at the heaviest weight it sent. Without that margin two
        // processes reaching the limit together both send their last requests and one gets a 429.
        let ipLimit = rule.limit - newcomerRoom - (othersUsed > 0 ? concurrency * heaviest : 0)
        let fits = used + weight <= ownLimit && max(used + othersUsed, serverUsed) + weight <= ipLimit
        if fits || (used == 0 && serverUsed == 0 && weight > min(ownLimit, ipLimit)) {
            used += weight
            heaviest = max(heaviest, weight)
            if windowStart + rule.windowMilliseconds - now <= boundaryGuardMilliseconds { carry += weight }
            return .granted(window: windowStart)
        }
        return .waitUntil(windowStart + rule.windowMilliseconds)
    }

    /// Takes in the server's count for the window a request was granted in.
    public mutating func observe(usedWeight: Int, grantedIn window: Int64) {
        guard window == windowStart else { return }
        serverUsed = max(serverUsed, usedWeight)
        othersUsed = max(othersUsed, usedWeight - used)
    }

    /// Stops every request until `until` (429 or 418 with `Retry-After`).
    public mutating func hold(until: Int64) {
        holdUntil = max(holdUntil, until)
    }

    /// Replaces the rule (after `exchangeInfo` published the real one). Weight already spent, ours and what the
    /// server reported (the count exchangeInfo's own answer carried), stays counted in the new rule's current
    /// window: it was spent moments ago.
    public mutating func update(rule newRule: RateLimitRule, now: Int64) {
        guard newRule != rule else { return }
        let spent = used, server = serverUsed, others = othersUsed
        rule = newRule
        windowStart = .min
        roll(to: now)
        used = min(spent, rule.limit)
        serverUsed = min(server, rule.limit)
        othersUsed = min(others, rule.limit)
    }
}
