import Foundation

/// What a follow process knows of itself, for `/readyz`, the terminal's progress line, the metrics and the summary:
/// which units' streams are connected, which units have caught up since, how long each closed candle took from its
/// final event's arrival to its commit (the lag), and how many events, corrections and reconnects there were.
/// Fixed size whatever the run's length: the lags are counted in millisecond buckets, never kept.
public final class FollowMonitor: @unchecked Sendable {
    /// Lags are counted per millisecond up to this; longer ones in one last bucket.
    public static let lagBuckets = 10_000

    public struct Snapshot: Sendable, Equatable {
        public var units = 0
        public var streaming = 0
        public var caughtUp = 0
        /// Units not ready (stream down, or catching up), by name; at most 20 named.
        public var behind: [String] = []
        public var events = 0
        public var committed = 0
        public var corrected = 0
        public var reconnects = 0
        /// Event-to-commit lag of the candles written from their final events (ms), nil before the first.
        public var lagP50: Int64?
        public var lagP99: Int64?
        public var lagMax: Int64?
        /// Every unit streams and has caught up since its stream (re)connected.
        public var ready: Bool { units > 0 && streaming == units && caughtUp == units }
    }

    private struct UnitState {
        var streaming = false
        var caughtUp = false
    }

    private let lock = NSLock()
    private var units: [String: UnitState] = [:]
    private var order: [String] = []
    private var lags = [Int](repeating: 0, count: FollowMonitor.lagBuckets + 1)
    private var lagMax: Int64 = 0
    private var value = Snapshot()

    /// `units`: every followed unit's name (its stream's).
    public init(units names: [String]) {
        order = names
        for name in names { units[name] = UnitState() }
    }

    /// A hub's connection carries (or lost) these units' streams. A unit whose stream was lost is behind until it has
    /// caught up again (a replacement made before the old connection closed loses nothing, and changes nothing here).
    public func streaming(_ names: some Sequence<String>, _ connected: Bool) {
        lock.withLock {
            for name in names where units[name] != nil {
                units[name]!.streaming = connected
                if !connected { units[name]!.caughtUp = false }
            }
            if !connected { value.reconnects += 1 }
        }
    }

    /// A unit caught up from its last stored row.
    public func caughtUp(_ name: String) {
        lock.withLock { if units[name] != nil { units[name]!.caughtUp = true } }
    }

    public func events(_ count: Int) { lock.withLock { value.events += count } }
    public func corrected(_ count: Int) { lock.withLock { value.corrected += count } }

    /// A candle from its final event committed, `lag` ms after the event arrived.
    public func committed(lag: Int64) {
        lock.withLock {
            lags[Int(min(max(lag, 0), Int64(Self.lagBuckets)))] += 1
            lagMax = max(lagMax, lag)
            value.committed += 1
        }
    }

    public var snapshot: Snapshot {
        lock.withLock {
            var s = value
            s.units = units.count
            for name in order {
                let unit = units[name]!
                if unit.streaming { s.streaming += 1 }
                if unit.streaming && unit.caughtUp { s.caughtUp += 1 } else if s.behind.count < 20 { s.behind.append(name) }
            }
            if s.committed > 0 {
                s.lagP50 = percentile(0.50, of: s.committed)
                s.lagP99 = percentile(0.99, of: s.committed)
                s.lagMax = lagMax
            }
            return s
        }
    }

    /// `/readyz`: ready when every unit streams and has caught up; the JSON body says how many, and which are behind.
    public func readiness() -> (ready: Bool, body: String) {
        let s = snapshot
        let behind = s.behind.map { "\"\($0)\"" }.joined(separator: ",")  // stream names: [a-z0-9@_] only
        return (s.ready, "{\"ready\":\(s.ready),\"units\":\(s.units),\"streaming\":\(s.streaming),\"caught_up\":\(s.caughtUp),\"behind\":[\(behind)]}")
    }

    private func percentile(_ p: Double, of total: Int) -> Int64 {
        let rank = max(1, Int((p * Double(total)).rounded(.up)))
        var seen = 0
        for (ms, count) in lags.enumerated() {
            seen += count
            if seen >= rank { return Int64(ms) }
        }
        return Int64(Self.lagBuckets)
    }
}
