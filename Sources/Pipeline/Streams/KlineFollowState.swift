import BinanceAPI

/// What a follower knows of one kline unit (a symbol and interval) and what it decides from each stream event: a pure
/// value, on the times it is given, so every rule below is tested without a network, a database or a clock.
///
/// - A closed candle is written when its final event (`"x": true`) arrives; one that comes twice, or after REST gave
///   it, is not written again; the open candle is never written.
/// - A final event that never comes is noticed when a later candle's events arrive `missingAfter` past its close: the
///   candles between the last stored one and that candle are fetched from REST before anything later is written, so
///   the table never has a hole below its newest row.
/// - Every candle written from the stream is confirmed from REST once `confirmAfter` has passed since its close: one
///   request covers every candle unconfirmed so far. A candle whose REST values differ is written again (REST is the
///   exchange's record) and counted.
public struct KlineFollowState: Sendable {
    public let interval: KlineInterval
    /// How long after a candle's close its final event may still come before REST is asked for it (ms).
    public let missingAfter: Int64
    /// How long after a candle's close REST is asked to confirm it (ms); well inside the 30 s promise.
    public let confirmAfter: Int64

    /// The newest open time stored (by a catch-up, a final event or REST); nil until known.
    public private(set) var stored: Int64?
    /// Candles written from the stream, not yet confirmed, oldest first.
    public private(set) var unconfirmed: [Kline] = []
    /// Counts for the outcome and metrics.
    public private(set) var duplicates = 0
    public private(set) var missedFinals = 0

    public init(interval: KlineInterval, stored: Int64?, missingAfter: Int64 = 3_000, confirmAfter: Int64 = 10_000) {
        self.interval = interval
        self.stored = stored
        self.missingAfter = missingAfter
        self.confirmAfter = confirmAfter
    }

    /// What the follower does next for this unit.
    public enum Action: Sendable, Equatable {
        /// Fetch candles `[from, through]` (open times) from REST and write them, before anything later.
        case fetch(from: Int64, through: Int64)
        /// Write this closed candle (from its final event).
        case write(Kline)
    }

    /// The open time of the candle after `openTime`.
    func next(_ openTime: Int64) -> Int64 { interval.nextOpenTime(after: openTime) }

    /// One kline event, arrived at `now`.
    public mutating func receive(_ kline: Kline, final: Bool, now: Int64) -> [Action] {
        var actions: [Action] = []
        let t = kline.openTime
        if let stored, t <= stored {
            if final { duplicates += 1 }
            return []
        }
        // Candles before this one that are not stored: their finals are late or lost.
        if let stored {
            let expected = next(stored)
            if t > expected {
                let previous = interval.openTime(containing: t - 1)
                // The candle just before this one may still get its final event (a moment late): wait `missingAfter`
                // past its close unless this event is final (the stream has moved on for sure).
                let closeOfPrevious = t - 1
                if final || now >= closeOfPrevious + missingAfter {
                    missedFinals += 1
                    actions.append(.fetch(from: expected, through: previous))
                } else if previous > expected {
                    // Older ones are missing for sure: only the newest may still come.
                    let older = interval.openTime(containing: previous - 1)
                    actions.append(.fetch(from: expected, through: older))
                }
            }
        }
        // A final event fetched every candle before it (above): nothing is written past a hole.
        guard final else { return actions }
        actions.append(.write(kline))
        return actions
    }

    /// Candles `[from, through]` were fetched from REST and written; `newest` is the newest of them (nil: REST had none,
    /// an outage: the stretch is done all the same).
    public mutating func fetched(from: Int64, through: Int64, newest: Int64?) {
        stored = max(stored ?? through, newest ?? through, through)
        // What REST gave is the exchange's record: nothing of it waits for confirmation.
        unconfirmed.removeAll { (from...through).contains($0.openTime) }
    }

    /// A final candle was written from the stream.
    public mutating func wrote(_ kline: Kline) {
        stored = max(stored ?? kline.openTime, kline.openTime)
        unconfirmed.append(kline)
    }

    /// A catch-up (or a write elsewhere) stored candles through `openTime`.
    public mutating func caughtUp(through openTime: Int64?) {
        guard let openTime else { return }
        stored = max(stored ?? openTime, openTime)
    }

    /// The stretch REST should confirm now, if any: from the oldest unconfirmed candle to the newest, once the oldest
    /// closed `confirmAfter` ago.
    public func confirmationDue(now: Int64) -> ClosedRange<Int64>? {
        guard let oldest = unconfirmed.first, let newest = unconfirmed.last else { return nil }
        guard now >= oldest.closeTime + 1 + confirmAfter else { return nil }
        return oldest.openTime...newest.openTime
    }

    /// REST's answer for a confirmation of `range`: the candles whose values differ from what the stream gave (to be
    /// written again), and how many were confirmed. A candle REST does not have is kept as the stream gave it.
    public mutating func confirm(_ range: ClosedRange<Int64>, rest: [Kline]) -> (corrections: [Kline], confirmed: Int) {
        let byTime = Dictionary(rest.map { ($0.openTime, $0) }, uniquingKeysWith: { a, _ in a })
        var corrections: [Kline] = []
        var confirmed = 0
        unconfirmed.removeAll { kline in
            guard range.contains(kline.openTime) else { return false }
            confirmed += 1
            if let truth = byTime[kline.openTime], truth != kline { corrections.append(truth) }
            return true
        }
        return (corrections, confirmed)
    }
}
