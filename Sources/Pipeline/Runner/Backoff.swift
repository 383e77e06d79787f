/// Exponential backoff with full jitter: attempt n waits a random time in [0, min(cap, base * 2^n)]
/// ("Exponential Backoff And Jitter", AWS Architecture Blog): retries from many tasks spread out instead of
/// arriving together.
public struct Backoff: Sendable {
    public var baseMilliseconds: Int64
    public var capMilliseconds: Int64

    public init(baseMilliseconds: Int64 = 500, capMilliseconds: Int64 = 30_000) {
        self.baseMilliseconds = baseMilliseconds
        self.capMilliseconds = capMilliseconds
    }

    /// The longest wait before retry `attempt` (0-based).
    public func ceiling(attempt: Int) -> Int64 {
        let shift = min(attempt, 30)
        return min(capMilliseconds, baseMilliseconds << Int64(shift))
    }

    /// The wait before retry `attempt`, with `unitRandom` in [0, 1).
    public func delay(attempt: Int, unitRandom: Double) -> Int64 {
        Int64(Double(ceiling(attempt: attempt)) * min(max(unitRandom, 0), 1))
    }
}
