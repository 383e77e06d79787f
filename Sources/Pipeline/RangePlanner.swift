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
    /// True when the run stops short of now because the catch-up cap was reached; the next run continues.
    public var capped: Bool

    public var isEmpty: Bool { end < start }

    /// How many candles the range holds at most (for progress).
    public func plannedCandles(_ interval: KlineInterval) -> Int64 {
        isEmpty || origin == .listing ? 0 : (end - start) / interval.nominalMilliseconds + 1
    }
}

/// Decides what a unit fetches. Pure: the inputs are the store's last open time and the clock's now.
public struct RangePlanner: Sendable, Equatable {
    /// Re-read at least this much before the last stored candle (existing deployments re-read one hour).
    public var overlapMilliseconds: Int64 = 3_600_000
    /// Where a unit with nothing stored starts (`LOOKBACK_HOURS`, default 24).
    public var lookbackMilliseconds: Int64 = 24 * 3_600_000
    /// How far past the last stored candle one run may go (`--max-catch-up-days`, default 7).
    public var maxCatchUpMilliseconds: Int64 = 7 * 86_400_000
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
            return FetchPlan(start: interval.openTime(containing: now - lookbackMilliseconds), end: now,
                             origin: .lookback, capped: false)
        }
        // Overlap: the last stored candle itself (it may have been stored before it closed) and at least one hour
        // before its end, aligned to a candle boundary.
        let lastEnd = interval.nextOpenTime(after: lastStored)
        let start = min(lastStored, interval.openTime(containing: lastEnd - overlapMilliseconds))
        // Catch-up cap, counted from the last stored candle: the next run starts where this one stopped, so the
        // cap never leaves a hole.
        let capEnd = lastStored + maxCatchUpMilliseconds
        return FetchPlan(start: start, end: min(now, capEnd), origin: .resume, capped: capEnd < now)
    }
}
