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
        let started = clock.now()
        var accumulated = UnitOutcome()
        var restarts = 0, backoffAttempt = 0
        while true {
            let attemptStarted = clock.now()
            do {
                accumulated.absorb(try await long.run(UnitAttempt(retry: restarts, previous: accumulated)))
                return UnitReport(unit: long.unit, status: .interrupted, outcome: accumulated, retries: restarts,
                                  durationMilliseconds: clock.now() - started)
            } catch {
                let underlying = (error as? UnitFailure)?.underlying ?? error
                if let partial = (error as? UnitFailure)?.partial { accumulated.absorb(partial) }
                if underlying is CancellationError || Task.isCancelled {
                    return UnitReport(unit: long.unit, status: .interrupted, outcome: accumulated, retries: restarts,
                                      durationMilliseconds: clock.now() - started)
                }
                guard !Self.endsFollowing(underlying) else {
                    logger.error("unit failed; not started again", metadata: ["unit": "\(long.unit)", "error": "\(underlying)"])
                    var report = UnitReport(unit: long.unit, status: .failed("\(underlying)"), outcome: accumulated, retries: restarts,
                                            durationMilliseconds: clock.now() - started)
                    report.badConfiguration = underlying is SchemaError || (underlying as? StoreFailure)?.isConfiguration == true
                    return report
                }
                // A unit that ran well for a while before failing starts again from the shortest wait.
                if clock.now() - attemptStarted >= healthyMilliseconds { backoffAttempt = 0 }
                let delay = backoff.delay(attempt: backoffAttempt, unitRandom: Double.random(in: 0..<1))
                restarts += 1
                backoffAttempt += 1
                logger.warning("unit failed; starting it again", metadata: [
                    "unit": "\(long.unit)", "restarts": "\(restarts)", "delay_ms": "\(delay)", "error": "\(underlying)",
                ])
                do { try await clock.sleep(until: clock.now() + delay) } catch {
                    return UnitReport(unit: long.unit, status: .interrupted, outcome: accumulated, retries: restarts,
                                      durationMilliseconds: clock.now() - started)
                }
            }
        }
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
