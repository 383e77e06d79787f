import BinanceAPI
import Clocks

/// Decides whether a request may go to an exchange that keeps failing. A value: tested without sleeping.
///
/// Closed: requests flow; `failureThreshold` consecutive failures open it. Open: no request goes until the
/// cool-down ends. Then one probe goes (half-open): a success closes the breaker, a failure opens it again with a
/// doubled cool-down. When it has been open longer than `maxOpenMilliseconds`, requests fail at once.
public struct CircuitBreakerState: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case closed(consecutiveFailures: Int)
        case open(until: Int64)
        case halfOpen
    }

    public enum Decision: Sendable, Equatable {
        case proceed
        /// Ask again at this moment.
        case waitUntil(Int64)
        /// Give up: the exchange has been failing since `since`.
        case fail(since: Int64)
    }

    public var failureThreshold: Int
    public var initialCooldownMilliseconds: Int64
    public var maxCooldownMilliseconds: Int64
    public var maxOpenMilliseconds: Int64
    public private(set) var phase: Phase = .closed(consecutiveFailures: 0)
    public private(set) var openedAt: Int64?
    private var cooldown: Int64

    public init(failureThreshold: Int = 5, initialCooldownMilliseconds: Int64 = 2_000, maxCooldownMilliseconds: Int64 = 30_000,
                maxOpenMilliseconds: Int64 = 120_000) {
        self.failureThreshold = max(1, failureThreshold)
        self.initialCooldownMilliseconds = initialCooldownMilliseconds
        self.maxCooldownMilliseconds = maxCooldownMilliseconds
        self.maxOpenMilliseconds = maxOpenMilliseconds
        cooldown = initialCooldownMilliseconds
    }

    public mutating func permit(now: Int64) -> Decision {
        switch phase {
        case .closed:
            return .proceed
        case .open(let until):
            if let openedAt, now - openedAt >= maxOpenMilliseconds { return .fail(since: openedAt) }
            if now < until { return .waitUntil(min(until, (openedAt ?? now) + maxOpenMilliseconds)) }
            phase = .halfOpen
            return .proceed  // the probe
        case .halfOpen:
            if let openedAt, now - openedAt >= maxOpenMilliseconds { return .fail(since: openedAt) }
            // One probe at a time; the others look again shortly.
            return .waitUntil(now + max(100, initialCooldownMilliseconds / 4))
        }
    }

    public mutating func record(success: Bool, now: Int64) {
        if success {
            phase = .closed(consecutiveFailures: 0)
            openedAt = nil
            cooldown = initialCooldownMilliseconds
            return
        }
        switch phase {
        case .closed(let failures):
            if failures + 1 >= failureThreshold {
                phase = .open(until: now + cooldown)
                openedAt = now
            } else {
                phase = .closed(consecutiveFailures: failures + 1)
            }
        case .halfOpen, .open:
            cooldown = min(cooldown * 2, maxCooldownMilliseconds)
            phase = .open(until: now + cooldown)
            if openedAt == nil { openedAt = now }
        }
    }
}

/// The circuit breaker of one market, shared by every task, so that an exchange that is down is not hammered by
/// every unit at once.
public actor CircuitBreaker {
    private var state: CircuitBreakerState
    private let clock: any WallClock
    private var lastError = ""
    public private(set) var opened = 0

    public init(state: CircuitBreakerState = CircuitBreakerState(), clock: any WallClock) {
        self.state = state
        self.clock = clock
    }

    /// Waits until a request may go; throws `BinanceError.exchangeUnavailable` once the exchange has been failing
    /// for longer than the breaker may stay open.
    public func permit() async throws {
        while true {
            try Task.checkCancellation()
            switch state.permit(now: clock.now()) {
            case .proceed: return
            case .waitUntil(let t): try await clock.sleep(until: t)
            case .fail(let since): throw BinanceError.exchangeUnavailable(since: since, lastError: lastError)
            }
        }
    }

    public func record(success: Bool, error: String? = nil) {
        let wasOpen = state.openedAt != nil
        state.record(success: success, now: clock.now())
        if let error { lastError = error }
        if !wasOpen && state.openedAt != nil { opened += 1 }
    }

    public var phase: CircuitBreakerState.Phase { state.phase }
}
