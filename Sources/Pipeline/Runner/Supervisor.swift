import BinanceAPI
import Clocks
import HTTPTransport
import Logging
import StoreKit
import Telemetry
import Tracing

/// What one attempt of a unit is given: which retry it is and what the attempts before it did.
public struct UnitAttempt: Sendable {
    /// 0 for the first attempt.
    public var retry: Int
    /// What earlier attempts did, merged: the range they were given and the last row they wrote.
    public var previous: UnitOutcome

    public init(retry: Int, previous: UnitOutcome) {
        self.retry = retry
        self.previous = previous
    }

    public static let first = UnitAttempt(retry: 0, previous: .init())

    /// The key of the last row an earlier attempt wrote: this attempt starts after it.
    public var resumeAfter: Int64? { previous.resumeAfter }
}

/// How one unit ended, for the summary and the exit status.
public struct UnitReport: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case succeeded
        case failed(String)
        /// Cancelled by SIGTERM/SIGINT after flushing what it had fetched.
        case interrupted
        /// Never started: the run was stopped first.
        case notStarted
    }
    public var unit: ExtractionUnit
    public var status: Status
    public var outcome: UnitOutcome
    public var retries: Int
    public var durationMilliseconds: Int64
    /// The unit failed on something only a change of configuration fixes (a table that cannot take its rows, a
    /// missing privilege): the run ends with exit 2, not 1.
    public var badConfiguration = false

    public var succeeded: Bool { status == .succeeded }
}

/// Runs every unit in a task group, at most `maxWorkers` at once, retrying a failed unit with backoff and
/// jitter. One unit's failure never stops the others. Cancelling the calling task (SIGTERM) stops new units,
/// lets running ones flush what they fetched, and reports the rest as not started.
public struct Supervisor: Sendable {
    public var maxWorkers: Int
    public var unitRetries: Int
    public var backoff: Backoff
    public let clock: any WallClock
    public let logger: Logger

    public init(maxWorkers: Int, unitRetries: Int = 2, backoff: Backoff = Backoff(baseMilliseconds: 1000),
                clock: any WallClock, logger: Logger = Logger(label: "supervisor")) {
        self.maxWorkers = max(1, maxWorkers)
        self.unitRetries = max(0, unitRetries)
        self.backoff = backoff
        self.clock = clock
        self.logger = logger
    }

    /// Runs `work` for every unit; `work` gets a fresh call per attempt.
    public func run(units: [ExtractionUnit],
                    work: @escaping @Sendable (ExtractionUnit, UnitAttempt) async throws -> UnitOutcome) async -> [UnitReport] {
        var reports: [UnitReport] = []
        await withTaskGroup(of: UnitReport.self) { group in
            var pending = units.makeIterator()
            for _ in 0..<maxWorkers {
                guard let unit = pending.next() else { break }
                group.addTask { await runUnit(unit, work: work) }
            }
            for await report in group {
                reports.append(report)
                if !Task.isCancelled, let unit = pending.next() {
                    group.addTask { await runUnit(unit, work: work) }
                }
            }
            while let unit = pending.next() {
                reports.append(UnitReport(unit: unit, status: .notStarted, outcome: .init(), retries: 0, durationMilliseconds: 0))
            }
        }
        let order = Dictionary(uniqueKeysWithValues: units.enumerated().map { ($1, $0) })
        return reports.sorted { order[$0.unit]! < order[$1.unit]! }
    }

    /// One span per unit, across its attempts: what it fetched and wrote, and why it failed.
    private func runUnit(_ unit: ExtractionUnit,
                         work: @Sendable (ExtractionUnit, UnitAttempt) async throws -> UnitOutcome) async -> UnitReport {
        await withSpan(unit.spanName, ofKind: .internal) { span in
            span.attributes["binance.market"] = unit.market.rawValue
            span.attributes["binance.symbol"] = unit.symbol.name
            span.attributes["binance.dataset"] = unit.timeframeLabel
            if let interval = unit.interval {
                span.attributes["binance.interval"] = interval.rawValue
                span.attributes["binance.series"] = unit.series.rawValue
            }
            let report = await attempts(unit, span: span, work: work)
            let o = report.outcome
            if let plan = o.plan {
                span.attributes["binance.range.start"] = UTCCalendar.iso8601(plan.start)
                span.attributes["binance.range.end"] = UTCCalendar.iso8601(plan.end)
                span.attributes["binance.range.origin"] = plan.origin.rawValue
                span.attributes["binance.range.capped"] = plan.capped
            }
            span.attributes["binance.klines.fetched"] = Int64(o.fetched)
            span.attributes["binance.klines.written"] = Int64(o.written)
            span.attributes["binance.requests"] = Int64(o.requests)
            span.attributes["binance.unit.retries"] = Int64(report.retries)
            span.attributes["binance.unit.status"] = "\(report.status)"
            return report
        }
    }

    private func attempts(_ unit: ExtractionUnit, span: any Span,
                          work: @Sendable (ExtractionUnit, UnitAttempt) async throws -> UnitOutcome) async -> UnitReport {
        let started = clock.now()
        var retries = 0
        var accumulated = UnitOutcome()
        while true {
            do {
                // A retry starts where the attempts before it stopped (`UnitAttempt.resumeAfter`), never from scratch.
                let outcome = try await work(unit, UnitAttempt(retry: retries, previous: accumulated))
                accumulated.absorb(outcome)
                let status: UnitReport.Status = outcome.interrupted ? .interrupted : .succeeded
                return UnitReport(unit: unit, status: status, outcome: accumulated, retries: retries,
                                  durationMilliseconds: clock.now() - started)
            } catch {
                let underlying = (error as? UnitFailure)?.underlying ?? error
                if let partial = (error as? UnitFailure)?.partial { accumulated.absorb(partial) }
                if underlying is CancellationError || Task.isCancelled {
                    return UnitReport(unit: unit, status: .interrupted, outcome: accumulated, retries: retries,
                                      durationMilliseconds: clock.now() - started)
                }
                if retries < unitRetries, Self.isRetryable(underlying) {
                    let delay = backoff.delay(attempt: retries, unitRandom: Double.random(in: 0..<1))
                    retries += 1
                    span.addEvent(SpanEvent(name: "retry", attributes: ["error": "\(underlying)", "delay_ms": .int64(delay)]))
                    logger.warning("unit failed; retrying", metadata: [
                        "unit": "\(unit)", "attempt": "\(retries)", "delay_ms": "\(delay)", "error": "\(underlying)",
                    ])
                    do { try await clock.sleep(until: clock.now() + delay) } catch {
                        return UnitReport(unit: unit, status: .interrupted, outcome: accumulated, retries: retries,
                                          durationMilliseconds: clock.now() - started)
                    }
                    continue
                }
                logger.error("unit failed", metadata: ["unit": "\(unit)", "error": "\(underlying)"])
                span.recordError(underlying)
                var report = UnitReport(unit: unit, status: .failed("\(underlying)"), outcome: accumulated, retries: retries,
                                        durationMilliseconds: clock.now() - started)
                report.badConfiguration = underlying is SchemaError || (underlying as? StoreFailure)?.isConfiguration == true
                return report
            }
        }
    }

    /// Which failures a later attempt of the same unit may get past.
    public static func isRetryable(_ error: any Error) -> Bool {
        switch error {
        case let e as BinanceError:
            if case .banned = e { return false }
            if case .exchangeUnavailable = e { return false }
            return e.isRetryable
        case let e as HTTPTransportError: return e.isRetryable
        case let e as StoreFailure: return e.isRetryable
        default: return false
        }
    }
}
