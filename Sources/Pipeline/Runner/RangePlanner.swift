import BinanceAPI

/// The open-time range one unit fetches in one run.
public struct FetchPlan: Sendable, Equatable {
    public enum Origin: String, Sendable, Equatable {
        /// Continues after the last stored candle, re-reading an overlap.
        case resume
        /// Nothing stored: starts `LOOKBACK_HOURS` ago.
        case lookback
        /// `--start` / `--end` given.
        case explicit
        /// Nothing stored and `--from-listing`: from the symbol's first candle.
        case listing
    }
    /// First open time to ask for (Binance returns klines whose open time is >= startTime).
    public var start: Int64
    /// Last open time to ask for (inclusive, as Binance's `endTime`).
    public var end: Int64
    public var origin: Origin
    /// The most candles this run may fetch (the catch-up cap, counted in work, not time), nil for no cap. A unit
    /// that reaches it stops there and the next run continues; a silence or a long candle never stops a run, because
    /// the requests ask up to `end` (now) and Binance answers with the next candles it has, however far away.
    public var candleBudget: Int64?
    /// True when the range holds more candles than the budget: this run will likely stop short of now.
    public var capped: Bool

    public var isEmpty: Bool { end < start }

    public init(start: Int64, end: Int64, origin: Origin, candleBudget: Int64? = nil, capped: Bool = false) {
        self.start = start
        self.end = end
        self.origin = origin
        self.candleBudget = candleBudget
        self.capped = capped
    }

    /// How many candles the range holds at most (for progress).
    public func plannedCandles(_ interval: KlineInterval) -> Int64 {
        guard !isEmpty, origin != .listing else { return 0 }
        let range = (end - start) / interval.nominalMilliseconds + 1
        return candleBudget.map { min($0, range) } ?? range
    }
}

/// Decides what a unit fetches. Pure: the inputs are the store's last open time and the clock's now.
public struct RangePlanner: Sendable, Equatable {
    /// Re-read at least this much before the last stored candle (existing deployments re-read one hour).
    public var overlapMilliseconds: Int64 = 3_600_000
    /// Where a unit with nothing stored starts (`LOOKBACK_HOURS`, default 24).
    public var lookbackMilliseconds: Int64 = 24 * 3_600_000
    /// How far past the last stored candle one run may go (`--max-catch-up-days`, default 7), as a count of
    /// candles: that many days' worth of the interval, and never fewer than `minimumCatchUpCandles`.
    public var maxCatchUpMilliseconds: Int64 = 7 * 86_400_000
    /// The least a resumed unit may fetch past its last stored candle in one run: two pages of klines, so a weekly
    /// or monthly unit (7 days hold no monthly candle) always reaches now.
    public static let minimumCatchUpCandles: Int64 = 1000
    /// `--start` / `--end` (end exclusive), for a manual backfill.
    public var explicitStart: Int64?
    public var explicitEnd: Int64?
    /// `--from-listing`: a unit with nothing stored starts at its first candle (Binance returns it for
    /// `startTime=0`) instead of `LOOKBACK_HOURS` ago.
    public var fromListing = false

    public init(overlapMilliseconds: Int64 = 3_600_000, lookbackMilliseconds: Int64 = 24 * 3_600_000,
                maxCatchUpMilliseconds: Int64 = 7 * 86_400_000, explicitStart: Int64? = nil, explicitEnd: Int64? = nil) {
        self.overlapMilliseconds = overlapMilliseconds
        self.lookbackMilliseconds = lookbackMilliseconds
        self.maxCatchUpMilliseconds = maxCatchUpMilliseconds
        self.explicitStart = explicitStart
        self.explicitEnd = explicitEnd
    }

    public func plan(interval: KlineInterval, lastStored: Int64?, now: Int64) -> FetchPlan {
        if let explicitStart {
            // A manual backfill covers exactly what was asked, with no cap; never past now.
            let end = min(explicitEnd.map { $0 - 1 } ?? now, now)
            return FetchPlan(start: explicitStart, end: end, origin: .explicit, capped: false)
        }
        guard let lastStored else {
            if fromListing { return FetchPlan(start: 0, end: now, origin: .listing, capped: false) }
            // At least the last closed candle: a 24 h lookback starts inside this week's or month's open candle.
            let lastClosed = interval.openTime(containing: interval.openTime(containing: now) - 1)
            return FetchPlan(start: min(interval.openTime(containing: now - lookbackMilliseconds), lastClosed), end: now,
                             origin: .lookback, capped: false)
        }
        // Overlap: the last stored candle itself (it may have been stored before it closed) and at least one hour
        // before its end, aligned to a candle boundary.
        let lastEnd = interval.nextOpenTime(after: lastStored)
        let start = min(lastStored, interval.openTime(containing: lastEnd - overlapMilliseconds))
        // Catch-up cap, as a number of candles past the last stored one: the next run starts where this one
        // stopped, so the cap never leaves a hole, and it is work, not a time window a silence could fall into.
        let overlap = interval.count(from: start, to: lastStored)
        let budget = overlap + catchUpCandles(interval)
        let ahead = now >= lastEnd ? interval.count(from: lastEnd, to: interval.openTime(containing: now)) : 0
        return FetchPlan(start: start, end: now, origin: .resume, candleBudget: budget, capped: ahead > budget - overlap)
    }

    /// The catch-up cap of one run for `interval`, in candles.
    public func catchUpCandles(_ interval: KlineInterval) -> Int64 {
        max(maxCatchUpMilliseconds / interval.nominalMilliseconds, Self.minimumCatchUpCandles)
    }
}
