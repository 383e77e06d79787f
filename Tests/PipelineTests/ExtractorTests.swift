import BinanceAPI
import Clocks
import ExtractorCLI
import Foundation
import Pipeline
import MariaDBStore
import StoreKit
import Testing

@Suite("SymbolExtractor, BatchWriter and Supervisor", .timeLimit(.minutes(2)))
struct ExtractorTests {
    let minute: Int64 = 60_000
    let start: Int64 = 1_704_067_200_000  // 2024-01-01T00:00Z

    func unit(_ symbol: String = "BTCUSDT", _ interval: KlineInterval = .m1) throws -> ExtractionUnit {
        ExtractionUnit(market: .futures, symbol: try Symbol(validating: symbol), interval: interval)
    }

    @Test("pages forward through the range and leaves out the still-open candle")
    func pagesAndSkipsOpen() async throws {
        let now = start + 2_000 * minute + 30_000  // the candle opening at start+2000m is open
        let clock = ManualClock(now: now)
        let source = FakeSource(listed: 0..<Int64.max, now: { clock.now() })
        let store = MemoryStore()
        let settings = SymbolExtractor.Settings(planner: RangePlanner(explicitStart: start), pageLimit: 499, batchSize: 700)
        let outcome = try await SymbolExtractor(unit: try unit(), source: source, store: store, clock: clock, settings: settings).run()
        let stored = store.stored(try unit().table!, "BTCUSDT")
        #expect(stored.count == 2_000)
        #expect(stored.first?.openTime == start)
        #expect(stored.last?.openTime == start + 1_999 * minute)
        #expect(outcome.skippedOpenCandle)
        #expect(outcome.fetched == 2_000 && outcome.written == 2_000)
        // 2001 candles in range at 499 per page: 5 requests, each starting 1 ms after the previous page's last
        // open time.
        #expect(source.requests.count == 5)
        let expectedStarts: [Int64] = [start] + (1..<5).map { (page: Int) -> Int64 in
            start + (Int64(page) * 499 - 1) * minute + 1
        }
        #expect(source.requests.map { $0.startTime! } == expectedStarts)
        // Batches of DB_BATCH_SIZE, the remainder last: memory holds at most a page and two batches.
        #expect(store.batches == [700, 700, 600])
    }

    @Test("resumes from the last stored candle and asks only for the new range")
    func resumes() async throws {
        let clock = ManualClock(now: start + 90 * minute)
        let source = FakeSource(listed: 0..<Int64.max, now: { clock.now() })
        let store = MemoryStore()
        let u = try unit()
        _ = try await store.write(table: u.table!, symbol: u.symbol, klines: (0..<80).map { FakeSource.kline(start + Int64($0) * minute, .m1) })
        let outcome = try await SymbolExtractor(unit: u, source: source, store: store, clock: clock,
                                                settings: .init(pageLimit: 499, batchSize: 2000)).run()
        #expect(source.requests.count == 1)
        #expect(source.requests[0].startTime == start + 80 * minute - 60 * minute)
        #expect(outcome.plan?.origin == .resume)
        #expect(store.stored(u.table!, "BTCUSDT").count == 90)
    }

    @Test("an inconsistent kline fails the unit with its values; nothing of its page is stored, earlier pages are")
    func invalidRowFailsUnit() async throws {
        let clock = ManualClock(now: start + 100 * minute)
        let source = FakeSource(listed: 0..<Int64.max, now: { clock.now() })
        source.corrupt = start + 50 * minute
        let store = MemoryStore()
        let u = try unit()
        let error = await #expect(throws: UnitFailure.self) {
            try await SymbolExtractor(unit: u, source: source, store: store, clock: clock,
                                      settings: .init(planner: RangePlanner(explicitStart: start), pageLimit: 20, batchSize: 10)).run()
        }
        #expect(error?.description.contains("invalid kline at 2024-01-01T00:50:00.000Z") == true)
        #expect(error?.description.contains("low=99") == true)
        // Pages of 20: the bad candle is in the third, which is refused whole; the two before it are stored.
        #expect(store.stored(u.table!, "BTCUSDT").count == 40)
    }

    @Test("dry run reads where units stand and writes nothing")
    func dryRun() async throws {
        let clock = ManualClock(now: start + 10 * minute)
        let source = FakeSource(listed: 0..<Int64.max, now: { clock.now() })
        let store = MemoryStore()
        let outcome = try await SymbolExtractor(unit: try unit(), source: source, store: DryRunStore(reader: store), clock: clock,
                                                settings: .init(planner: RangePlanner(explicitStart: start))).run()
        #expect(outcome.fetched == 10)
        #expect(store.batches.isEmpty)
    }

    @Test("runs at most MAX_WORKERS units at once; one failure never stops the others")
    func supervisorIsolation() async throws {
        let clock = ManualClock(now: 0)
        let counter = Concurrency()
        let units = try (0..<8).map { try unit("S\($0)USDT") }
        let reports = await Supervisor(maxWorkers: 3, unitRetries: 0, clock: clock).run(units: units) { unit, _ in
            counter.enter()
            defer { counter.leave() }
            for _ in 0..<5 { await Task.yield() }
            if unit.symbol.name == "S3USDT" { throw BinanceError.api(status: 400, payload: .init(code: -1121, msg: "Invalid symbol.")) }
            return UnitOutcome()
        }
        #expect(counter.peak <= 3)
        #expect(reports.map(\.unit) == units)
        #expect(reports.filter(\.succeeded).count == 7)
        guard case .failed(let message) = reports[3].status else { Issue.record("S3USDT should fail"); return }
        #expect(message.contains("-1121"))
    }

    @Test("a retryable failure is retried with backoff on the clock, then succeeds")
    func supervisorRetries() async throws {
        let clock = ManualClock(now: 0)
        let attempts = Concurrency()
        let units = [try unit()]
        let reports = try await clock.drive(step: 1000) {
            await Supervisor(maxWorkers: 1, unitRetries: 2, backoff: Backoff(baseMilliseconds: 1000, capMilliseconds: 1000), clock: clock)
                .run(units: units) { _, _ in
                    attempts.enter()
                    if attempts.total < 3 { throw BinanceError.unexpectedStatus(status: 503, bodyPrefix: "") }
                    return UnitOutcome()
                }
        }
        #expect(reports[0].succeeded)
        #expect(reports[0].retries == 2)
        #expect(attempts.total == 3)
    }

    @Test("a retried unit resumes after the last candle it wrote instead of fetching its range again")
    func retryResumesFromWritten() async throws {
        let start: Int64 = 1_704_067_200_000  // 2024-01-01
        let clock = ManualClock(now: start + 3 * 86_400_000)
        let source = FakeSource(listed: 0..<Int64.max, now: { clock.now() })
        // The third page fails past the client's own retries: the unit fails and the supervisor retries it.
        source.failOnRequest[3] = BinanceError.unexpectedStatus(status: 503, bodyPrefix: "")
        let store = MemoryStore()
        let unit = try unit()
        let settings = SymbolExtractor.Settings(planner: RangePlanner(explicitStart: start, explicitEnd: start + 86_400_000),
                                                pageLimit: 499, batchSize: 300)
        let reports = try await clock.drive(step: 1000) {
            await Supervisor(maxWorkers: 1, unitRetries: 1, backoff: Backoff(baseMilliseconds: 1000, capMilliseconds: 1000), clock: clock)
                .run(units: [unit]) { unit, attempt in
                    try await SymbolExtractor(unit: unit, source: source, store: store, clock: clock, settings: settings).run(attempt)
                }
        }
        let report = try #require(reports.first)
        #expect(report.succeeded && report.retries == 1)
        // 1440 candles: two pages (998) before the failure, then one page of the other 442, from the candle after the
        // last one written.
        let requests = source.lock.withLock { source.requests }
        #expect(requests.count == 3 + 1)
        #expect(requests[3].startTime == start + 997 * 60_000 + 1)
        #expect(report.outcome.fetched == 1440)
        #expect(report.outcome.written == 1440)
        #expect(store.stored(KlineTable(market: .futures, interval: .m1), "BTCUSDT").count == 1440)
        #expect(report.outcome.lastTime == start + 1439 * 60_000)
    }

    @Test("a write that fails (a full disk): the outcome's last open time is the last candle stored, not the last fetched")
    func lastOpenTimeIsStored() async throws {
        let start: Int64 = 1_704_067_200_000
        let clock = ManualClock(now: start + 3 * 86_400_000)
        let source = FakeSource(listed: 0..<Int64.max, now: { clock.now() })
        let store = MemoryStore()
        store.failAfterBatches = 2
        let u = try unit()
        let error = await #expect(throws: UnitFailure.self) {
            try await SymbolExtractor(unit: u, source: source, store: store, clock: clock,
                                      settings: .init(planner: RangePlanner(explicitStart: start), pageLimit: 499, batchSize: 300)).run()
        }
        let stored = store.stored(u.table!, "BTCUSDT")
        #expect(stored.count == 600)
        #expect(error?.partial.lastTime == stored.last?.openTime)
        #expect((error?.partial.fetched ?? 0) > 600, "more was fetched than stored")
    }

    @Test("BatchWriter with two writes in flight: at most two at once, counted and flushed in the order made though they finish out of order; a failure waits for the other and is thrown")
    func twoInFlight() async throws {
        let gate = InFlightGate()
        let writer = BatchWriter<Int>(batchSize: 10, inFlight: 2) { rows in
            await gate.enter()
            // The first batch finishes after the second: the writer must still count and flush in order.
            if rows.first == 0 { await gate.waitForSecond() }
            await gate.leave()
            if rows.first == 40 { throw CancellationError() }
            return rows.count
        }
        try await writer.append(Array(0..<35))
        try await writer.finish()
        let (written, batches, first, last) = (await writer.written, await writer.batches, await writer.firstFlushed, await writer.lastFlushed)
        #expect(written == 35 && batches == 4)
        #expect(first == 0 && last == 34)
        #expect(await gate.most == 2, "two writes at once, never three")

        let failing = BatchWriter<Int>(batchSize: 10, inFlight: 2) { rows in
            await gate.enter()
            await gate.leave()
            if rows.first == 40 { throw CancellationError() }
            return rows.count
        }
        await #expect(throws: CancellationError.self) {
            try await failing.append(Array(30..<60))
            try await failing.finish()
        }
        #expect(await failing.lastFlushed == 39, "the batch before the failed one is the last flushed")
    }

    @Test("stalled: neither moved nor caught up; a unit that moved or caught up is not stalled")
    func stalledOutcome() {
        var o = UnitOutcome()
        o.caughtUp = false
        o.storedBefore = 1_000
        o.lastTime = 1_000
        #expect(o.stalled, "re-read its last candle only, and the cap stopped it")
        o.lastTime = 61_000
        #expect(!o.stalled, "moved")
        o.lastTime = nil
        #expect(o.stalled, "wrote nothing at all")
        o.caughtUp = true
        #expect(!o.stalled, "at Binance's newest candle")
        o.caughtUp = nil
        #expect(!o.stalled, "a dataset that does not say")
    }

    @Test("a request issue (-1121 and the 11xx family) is not retried")
    func fatalNotRetried() {
        #expect(!Supervisor.isRetryable(BinanceError.api(status: 400, payload: .init(code: -1121, msg: "Invalid symbol."))))
        #expect(Supervisor.isRetryable(BinanceError.api(status: 503, payload: .init(code: -1001, msg: "Service Unavailable."))))
        #expect(!Supervisor.isRetryable(BinanceError.banned(retryAfterSeconds: 600, until: 1)))
        #expect(Supervisor.isRetryable(DatabaseError(code: 1213, message: "Deadlock", context: "test")))
        #expect(!Supervisor.isRetryable(DatabaseError(code: 1045, message: "Access denied", context: "test")))
    }
}

/// Counts concurrent and total entries.
final class Concurrency: @unchecked Sendable {
    private let lock = NSLock()
    private var current = 0
    private(set) var peak = 0
    private(set) var total = 0
    func enter() { lock.withLock { current += 1; total += 1; peak = max(peak, current) } }
    func leave() { lock.withLock { current -= 1 } }
}

/// Counts writes running at once; lets the test hold the first batch until the second has started.
actor InFlightGate {
    private(set) var most = 0
    private var now = 0
    private var entered = 0
    private var waiting: CheckedContinuation<Void, Never>?

    func enter() {
        now += 1
        entered += 1
        most = max(most, now)
        if entered == 2, let waiting {
            self.waiting = nil
            waiting.resume()
        }
    }

    func leave() { now -= 1 }

    func waitForSecond() async {
        guard entered < 2 else { return }
        await withCheckedContinuation { waiting = $0 }
    }
}
