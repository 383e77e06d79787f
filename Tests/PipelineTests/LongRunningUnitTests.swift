import BinanceAPI
import Clocks
import Foundation
import Pipeline
import StoreKit
import Testing

/// Long-running units under the supervisor: started again after a failure, stopped by cancellation, ended by a failure
/// no restart mends. No network, no database; the clock is a manual one and backoffs are zero.
@Suite("long-running units", .timeLimit(.minutes(1)))
struct LongRunningUnitTests {
    /// Fails its first `failures` starts, then runs until cancelled; each start is announced on `starts`.
    final class Follower: LongRunningUnit, @unchecked Sendable {
        let unit: ExtractionUnit
        let lock = NSLock()
        var failures: [any Error]
        let starts: AsyncStream<Int>.Continuation
        private var count = 0

        init(_ symbol: String, failures: [any Error], starts: AsyncStream<Int>.Continuation) {
            unit = ExtractionUnit(market: .futures, symbol: try! Symbol(validating: symbol), interval: .m1)
            self.failures = failures
            self.starts = starts
        }

        func run(_ attempt: UnitAttempt) async throws -> UnitOutcome {
            let (number, failure): (Int, (any Error)?) = lock.withLock {
                count += 1
                return (count, failures.isEmpty ? nil : failures.removeFirst())
            }
            starts.yield(number)
            if let failure { throw failure }
            var outcome = UnitOutcome()
            outcome.written = 10 * number
            while !Task.isCancelled { await Task.yield() }
            outcome.interrupted = true
            return outcome
        }
    }

    @Test("a follower that fails is started again after a backoff; cancellation stops it as interrupted, keeping what it did")
    func restartedThenStopped() async throws {
        let (starts, continuation) = AsyncStream<Int>.makeStream()
        let follower = Follower("BTCUSDT", failures: [HTTPLikeFailure(), BinanceError.malformedBody("a lie")], starts: continuation)
        let supervisor = Supervisor(maxWorkers: 4, backoff: Backoff(baseMilliseconds: 0), clock: ManualClock(now: 0))
        let run = Task { await supervisor.follow([follower]) }
        for await number in starts where number == 3 { break }
        run.cancel()
        let reports = await run.value
        #expect(reports.count == 1)
        #expect(reports[0].status == .interrupted && reports[0].retries == 2)
        #expect(reports[0].outcome.written == 30)
    }

    @Test("a failure no restart mends (an unknown symbol) ends that follower as failed; the others go on until cancelled")
    func configurationEndsIt() async throws {
        let (starts, continuation) = AsyncStream<Int>.makeStream()
        let unknown = BinanceError.api(status: 400, payload: BinanceErrorPayload(code: -1121, msg: "Invalid symbol."))
        let bad = Follower("NOPEUSDT", failures: [unknown], starts: continuation)
        let (goodStarts, goodContinuation) = AsyncStream<Int>.makeStream()
        let good = Follower("ETHUSDT", failures: [], starts: goodContinuation)
        let supervisor = Supervisor(maxWorkers: 4, backoff: Backoff(baseMilliseconds: 0), clock: ManualClock(now: 0))
        let run = Task { await supervisor.follow([bad, good]) }
        for await _ in starts { break }
        for await _ in goodStarts { break }
        run.cancel()
        let reports = await run.value
        #expect(reports.map(\.unit.symbol.name) == ["NOPEUSDT", "ETHUSDT"])
        guard case .failed(let message) = reports[0].status else { Issue.record("\(reports[0].status)"); return }
        #expect(message.contains("-1121") && reports[0].retries == 0)
        #expect(reports[1].status == .interrupted)
    }

    struct HTTPLikeFailure: Error {}
}
