import BinanceAPI
import Logging
import StoreKit
import Tracing

/// A unit that runs until it is cancelled, beside the finite ones: a stream follower keeping a table current. It
/// feeds the same `BatchWriter`s and stores as a finite unit; the supervisor starts it, starts it again with backoff
/// when it fails (a dropped connection, a database away), and stops it on shutdown.
public protocol LongRunningUnit: Sendable {
    var unit: ExtractionUnit { get }
    /// Runs until the task is cancelled, then flushes and returns what it did; throws when it cannot go on.
    func run(_ attempt: UnitAttempt) async throws -> UnitOutcome
}

extension Supervisor {
    /// Runs every long-running unit until the calling task is cancelled (SIGTERM through the service group). A unit that
    /// fails is started again after a backoff (reset once it has run for `healthyMilliseconds`), however often: a
    /// follower outlives any outage. Only a failure no retry can mend (bad configuration, an unknown symbol) ends it.
    public func follow(_ units: [any LongRunningUnit], healthyMilliseconds: Int64 = 60_000) async -> [UnitReport] {
        await withTaskGroup(of: UnitReport.self) { group in
            for unit in units {
                group.addTask { await keep(unit, healthyMilliseconds: healthyMilliseconds) }
            }
            var reports: [UnitReport] = []
            for await report in group { reports.append(report) }
            let order = Dictionary(uniqueKeysWithValues: units.enumerated().map { ($1.unit, $0) })
            return reports.sorted { order[$0.unit, default: 0] < order[$1.unit, default: 0] }
        }
    }

    /// Runs the followers and the hubs that feed their inboxes until the calling task is cancelled (or every follower
    /// has ended); the hubs stop with them.
    public func follow(_ units: [any LongRunningUnit], fedBy hubs: [StreamHub], healthyMilliseconds: Int64 = 60_000) async -> [UnitReport] {
        await withTaskGroup(of: [UnitReport].self) { group in
            for hub in hubs { group.addTask { await hub.run(); return [] } }
            let reports = await follow(units, healthyMilliseconds: healthyMilliseconds)
            group.cancelAll()
            return reports
        }
    }

    private func keep(_ long: any LongRunningUnit, healthyMilliseconds: Int64) async -> UnitReport {
        // What the keeping accumulates lives on the heap, and the decisions are made in a synchronous function: a
        // thousand of these tasks live as long as the process, each with the async frames of this loop.
        let kept = Kept(started: clock.now())
        while true {
            let attemptStarted = clock.now()
            var failure: (any Error)?
            do {
                kept.accumulated.absorb(try await long.run(UnitAttempt(retry: kept.restarts, previous: kept.accumulated)))
            } catch {
                failure = error
            }
            switch next(after: failure, long.unit, kept, attemptStarted: attemptStarted, healthyMilliseconds: healthyMilliseconds) {
            case .report(let report):
                return report
            case .wait(let delay):
                do { try await clock.sleep(until: clock.now() + delay) } catch {
                    return kept.report(long.unit, .interrupted, now: clock.now())
                }
            }
        }
    }

    /// A kept unit's totals and restarts.
    private final class Kept: @unchecked Sendable {
        let started: Int64
        var accumulated = UnitOutcome()
        var restarts = 0, backoffAttempt = 0
        init(started: Int64) { self.started = started }

        func report(_ unit: ExtractionUnit, _ status: UnitReport.Status, now: Int64) -> UnitReport {
            UnitReport(unit: unit, status: status, outcome: accumulated, retries: restarts, durationMilliseconds: now - started)
        }
    }

    private enum Next {
        case report(UnitReport)
        case wait(Int64)
    }

    /// After an attempt ended (`failure` nil: stopped as asked): the report to end with, or the wait before the next.
    private func next(after failure: (any Error)?, _ unit: ExtractionUnit, _ kept: Kept, attemptStarted: Int64, healthyMilliseconds: Int64) -> Next {
        guard let error = failure else { return .report(kept.report(unit, .interrupted, now: clock.now())) }
        let underlying = (error as? UnitFailure)?.underlying ?? error
        if let partial = (error as? UnitFailure)?.partial { kept.accumulated.absorb(partial) }
        if underlying is CancellationError || Task.isCancelled { return .report(kept.report(unit, .interrupted, now: clock.now())) }
        guard !Self.endsFollowing(underlying) else {
            logger.error("unit failed; not started again", metadata: ["unit": "\(unit)", "error": "\(underlying)"])
            var report = kept.report(unit, .failed("\(underlying)"), now: clock.now())
            report.badConfiguration = underlying is SchemaError || (underlying as? StoreFailure)?.isConfiguration == true
            return .report(report)
        }
        // A unit that ran well for a while before failing starts again from the shortest wait.
        if clock.now() - attemptStarted >= healthyMilliseconds { kept.backoffAttempt = 0 }
        let delay = backoff.delay(attempt: kept.backoffAttempt, unitRandom: Double.random(in: 0..<1))
        kept.restarts += 1
        kept.backoffAttempt += 1
        logger.warning("unit failed; starting it again", metadata: [
            "unit": "\(unit)", "restarts": "\(kept.restarts)", "delay_ms": "\(delay)", "error": "\(underlying)",
        ])
        return .wait(delay)
    }

    /// Failures that no restart mends: a table that cannot take the rows, wrong credentials or privileges, a request
    /// Binance refuses as such (an unknown symbol, a bad parameter), a URL that is not Binance's. Everything else (a
    /// dropped connection, an exchange or database away, a ban the limiter waits out, a lying answer) is started again.
    static func endsFollowing(_ error: any Error) -> Bool {
        switch error {
        case is SchemaError: return true
        case let e as StoreFailure: return e.isConfiguration
        case let e as BinanceError:
            if case .api(_, let payload) = e, BinanceErrorCode.isRequestIssue(payload.code) { return true }
            return e.meansNotBinance
        default: return false
        }
    }
}
