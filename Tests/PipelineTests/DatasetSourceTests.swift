import BinanceAPI
import Clocks
import Foundation
import Pipeline
import StoreKit
import Testing

/// Trades, funding, metrics and the gap filler against fake page sources and in-memory stores: no network, no
/// simulator, no database. Each extractor takes its dataset's source protocol, as klines take `KlineSource`.
@Suite("trades, funding, metrics and gaps against fake sources", .timeLimit(.minutes(1)))
struct DatasetSourceTests {
    static let start: Int64 = 1_704_067_200_000  // 2024-01-01T00:00:00Z
    let symbol = try! Symbol(validating: "BTCUSDT")

    // MARK: Trades

    @Test("trades from an empty table: the first trade found by hour windows, then paged by id to the run's start, each id once")
    func tradesFromEmpty() async throws {
        let now = Self.start + 10 * 3_600_000
        let source = FakeTrades(firstTime: Self.start + 2 * 3_600_000 + 30_000, every: 10_000, now: now)
        let store = MemoryTrades()
        let outcome = try await TradeExtractor(market: .futures, symbol: symbol, client: source, store: store, clock: ManualClock(now: now),
                                               startTime: Self.start, batchSize: 700, maxPages: 100, dryRun: false).run()
        let ids = store.ids()
        #expect(ids == Array(1...source.count(through: now)), "\(ids.count) stored of \(source.count(through: now))")
        // Two empty hours, the hour of the first trade, then pages of 1000 by id.
        let windows = source.requests.filter { $0.fromId == nil }
        #expect(windows.count == 3 && windows.allSatisfy { $0.limit == 1 })
        #expect(outcome.written == ids.count && outcome.lastTime == source.time(of: Int64(ids.count)))
    }

    @Test("a retried trades unit resumes by id after the last trade it wrote, fetching nothing twice")
    func tradesRetryResumes() async throws {
        let now = Self.start + 3_600_000
        let source = FakeTrades(firstTime: Self.start, every: 1_000, now: now)
        let store = MemoryTrades()
        source.failOnRequest = 3  // the window, one page of 1000, then a failure
        let extractor = TradeExtractor(market: .futures, symbol: symbol, client: source, store: store, clock: ManualClock(now: now),
                                       startTime: Self.start, batchSize: 500, maxPages: 100, dryRun: false)
        let failure = try #require(await #expect(throws: UnitFailure.self) { _ = try await extractor.run() })
        #expect(failure.partial.resumeAfter == 1000)
        let retry = try await extractor.run(UnitAttempt(retry: 1, previous: failure.partial))
        #expect(store.ids() == Array(1...source.count(through: now)))
        #expect(store.writes.values.allSatisfy { $0 == 1 }, "no trade written twice")
        #expect(source.requests.last?.fromId != nil && source.requests.filter { $0.fromId == 1001 }.count == 2, "the failed page, then its retry")
        #expect(retry.fetched == source.count(through: now) - 1000)
    }

    @Test("a trades page out of order is refused whole: nothing of it is stored")
    func tradesOutOfOrder() async throws {
        let now = Self.start + 3_600_000
        let source = FakeTrades(firstTime: Self.start, every: 1_000, now: now)
        source.shuffleFromRequest = 2
        let store = MemoryTrades()
        let failure = try #require(await #expect(throws: UnitFailure.self) {
            _ = try await TradeExtractor(market: .futures, symbol: symbol, client: source, store: store, clock: ManualClock(now: now),
                                         startTime: Self.start, batchSize: 500, maxPages: 100, dryRun: false).run()
        })
        #expect("\(failure.underlying)".contains("out of order"))
        #expect(store.ids().isEmpty)
    }

    // MARK: Funding

    @Test("funding resumes from the last stored time and pages by 1000; an explicit range takes exactly its rates")
    func fundingPages() async throws {
        let now = Self.start + 400 * 86_400_000
        let source = FakeFunding(listed: Self.start)
        let store = MemoryFunding()
        let clock = ManualClock(now: now)
        let first = try await FundingExtractor(symbol: symbol, client: source, store: store, clock: clock, lookbackMilliseconds: 500 * 86_400_000,
                                               explicitRange: nil, batchSize: 300).run()
        let all = source.rates(from: Self.start, through: now)
        #expect(store.times() == all.map(\.fundingTime) && first.written == all.count)
        #expect(source.requests.count == all.count / 1000 + 1, "\(source.requests.count) pages for \(all.count) rates")
        // A later run asks from the last stored rate on.
        clock.advance(by: 8 * 3_600_000)
        source.requests.removeAll()
        let next = try await FundingExtractor(symbol: symbol, client: source, store: store, clock: clock, lookbackMilliseconds: 0,
                                              explicitRange: nil, batchSize: 300).run()
        #expect(source.requests.count == 1 && source.requests[0].start == all.last!.fundingTime)
        #expect(next.plan?.origin == .resume && store.times().count == all.count + 1)
        // An explicit range below what is stored: exactly its rates, written again.
        let range = (Self.start + 86_400_000)...(Self.start + 3 * 86_400_000 - 1)
        let backfill = try await FundingExtractor(symbol: symbol, client: source, store: store, clock: clock, lookbackMilliseconds: 0,
                                                  explicitRange: range, batchSize: 300).run()
        #expect(backfill.fetched == 6 && backfill.plan?.origin == .explicit)
    }

    @Test("funding rates out of order are refused whole")
    func fundingOutOfOrder() async throws {
        let source = FakeFunding(listed: Self.start)
        source.reversed = true
        let store = MemoryFunding()
        await #expect(throws: UnitFailure.self) {
            _ = try await FundingExtractor(symbol: symbol, client: source, store: store, clock: ManualClock(now: Self.start + 10 * 86_400_000),
                                           lookbackMilliseconds: 20 * 86_400_000, explicitRange: nil, batchSize: 300).run()
        }
        #expect(store.times().isEmpty)
    }

    // MARK: Metrics

    @Test("metrics from REST: the five endpoints' windows of 500 periods merged into one row per time; a value an endpoint lacks stays nil")
    func metricsMerged() async throws {
        let now = Self.start + 40 * 86_400_000
        let source = FakeMetrics()
        source.takerMissing = [Self.start + 39 * 86_400_000]
        let store = MemoryMetrics()
        let unit = ExtractionUnit(market: .futures, symbol: symbol, dataset: .metrics)
        let from = Self.start + 38 * 86_400_000
        let outcome = try await MetricsExtractor(unit: unit, client: source, store: store, clock: ManualClock(now: now), lookbackMilliseconds: 0,
                                                 explicitRange: from...(now - 1), batchSize: 400, sourceMode: .rest, archive: nil, dryRun: false,
                                                 logger: .init(label: "test")).run()
        let rows = store.rows()
        #expect(rows.count == 2 * 288 && rows.first?.time == from && outcome.written == rows.count)
        #expect(rows.allSatisfy { $0.sumOpenInterest != nil && $0.topTraderPositionRatio != nil })
        #expect(rows.filter { $0.takerBuySellRatio == nil }.map(\.time) == [Self.start + 39 * 86_400_000])
        // 576 periods: two windows (500 + 76) of the five endpoints.
        #expect(source.requests.count == 10 && Set(source.requests.map(\.endpoint)).count == 5)
    }

    @Test("metrics older than REST's 30 days are never asked of REST: counted as lacked, the rest stored")
    func metricsRESTFloor() async throws {
        let now = Self.start + 40 * 86_400_000
        let source = FakeMetrics()
        let store = MemoryMetrics()
        let unit = ExtractionUnit(market: .futures, symbol: symbol, dataset: .metrics)
        let outcome = try await MetricsExtractor(unit: unit, client: source, store: store, clock: ManualClock(now: now), lookbackMilliseconds: 0,
                                                 explicitRange: (now - 32 * 86_400_000)...(now - 1), batchSize: 2000, sourceMode: .rest,
                                                 archive: nil, dryRun: false, logger: .init(label: "test")).run()
        let floor = FuturesMetrics.restFloor(now: now)
        #expect(source.requests.allSatisfy { $0.start >= floor })
        #expect(outcome.archiveLacked == (floor - (now - 32 * 86_400_000)) / 300_000)
        #expect(store.rows().first?.time == floor)
    }

    // MARK: Gaps

    @Test("the gap filler fills a kline hole from the source and confirms only the part Binance has no candle for")
    func klineGapsConfirmOutage() async throws {
        let interval = KlineInterval.m15
        let now = Self.start + 2 * 86_400_000
        let outage = (Self.start + 86_400_000)..<(Self.start + 86_400_000 + 4 * 900_000)
        let source = FakeSource(listed: Self.start..<Int64.max, now: { now })
        source.outage = outage
        let store = MemoryStore()
        let table = KlineTable(market: .futures, interval: interval)
        // Everything stored but twelve candles around the outage.
        let hole = KlineHole(symbol: "BTCUSDT", from: outage.lowerBound - 4 * 900_000, to: outage.upperBound + 3 * 900_000, missing: 12)
        let all = try await source.klines(KlinesRequest(market: .futures, symbol: symbol, interval: interval, startTime: Self.start, endTime: now - 1, limit: 1000))
        _ = try await store.write(table: table, symbol: symbol, klines: all.filter { $0.openTime < hole.from || $0.openTime > hole.to })
        let gaps = MemoryGaps(store: store)
        let unit = ExtractionUnit(market: .futures, symbol: symbol, dataset: .gaps(interval))
        let outcome = try await GapFiller(unit: unit, holes: [hole], client: source, store: store, gaps: gaps, clock: ManualClock(now: now),
                                          batchSize: 100, logger: .init(label: "test")).run()
        #expect(outcome.written == 8)
        #expect(store.stored(table, "BTCUSDT").map(\.openTime) == all.map(\.openTime))
        #expect(gaps.confirmedHoles == [KlineHole(symbol: "BTCUSDT", from: outage.lowerBound, to: outage.upperBound - 900_000, missing: 4)])
    }

    @Test("the metrics gap filler confirms what REST answered empty, never a hole older than REST's 30 days")
    func metricsGapsNeverConfirmOld() async throws {
        let now = Self.start + 40 * 86_400_000
        let source = FakeMetrics()
        let floor = FuturesMetrics.restFloor(now: now)
        let recent = (floor + 86_400_000)..<(floor + 86_400_000 + 6 * 300_000)
        source.silent = recent
        let store = MemoryMetrics()
        let gaps = MemoryGaps(metrics: store)
        let unit = ExtractionUnit(market: .futures, symbol: symbol, dataset: .metricsGaps)
        let old = KlineHole(symbol: "BTCUSDT", from: floor - 2 * 86_400_000, to: floor - 2 * 86_400_000 + 11 * 300_000, missing: 12)
        let young = KlineHole(symbol: "BTCUSDT", from: recent.lowerBound - 300_000, to: recent.upperBound, missing: 8)
        _ = try await GapFiller(metrics: unit, holes: [old, young], client: source, store: store, gaps: gaps, clock: ManualClock(now: now),
                                batchSize: 100, sourceMode: .rest, archive: nil, logger: .init(label: "test")).run()
        #expect(source.requests.allSatisfy { $0.start >= floor }, "nothing older than REST keeps was asked")
        #expect(store.rows().map(\.time) == [recent.lowerBound - 300_000, recent.upperBound])
        #expect(gaps.confirmedHoles == [KlineHole(symbol: "BTCUSDT", from: recent.lowerBound, to: recent.upperBound - 300_000, missing: 6)])
    }
}

// MARK: Fakes

/// A symbol trading once every `every` ms from `firstTime`, trade ids from 1; answers by id or by window, as Binance.
final class FakeTrades: TradeSource, @unchecked Sendable {
    struct Request { let fromId: Int64?; let start: Int64?; let end: Int64?; let limit: Int }
    let lock = NSLock()
    let firstTime: Int64, every: Int64, now: Int64
    var requests: [Request] { lock.withLock { log } }
    private var log: [Request] = []
    var failOnRequest: Int?
    var shuffleFromRequest: Int?

    init(firstTime: Int64, every: Int64, now: Int64) {
        (self.firstTime, self.every, self.now) = (firstTime, every, now)
    }

    func time(of id: Int64) -> Int64 { firstTime + (id - 1) * every }
    func count(through time: Int64) -> Int64 { time < firstTime ? 0 : (time - firstTime) / every + 1 }

    func aggTrades(symbol: Symbol, fromId: Int64?, startTime: Int64?, endTime: Int64?, limit: Int) async throws -> [AggTrade] {
        let number = lock.withLock { log.append(Request(fromId: fromId, start: startTime, end: endTime, limit: limit)); return log.count }
        if number == failOnRequest { throw BinanceError.malformedBody("injected failure") }
        let last = count(through: now)
        let first = fromId ?? max(1, startTime.map { $0 <= firstTime ? 1 : (($0 - firstTime) + every - 1) / every + 1 } ?? 1)
        let end = endTime.map { min(last, count(through: $0)) } ?? last
        guard first <= end else { return [] }
        var page = (first...min(end, first + Int64(limit) - 1)).map { id in
            AggTrade(id: id, price: DecimalString(unchecked: "42000.5"), quantity: DecimalString(unchecked: "0.01"), firstTradeId: id * 3,
                     lastTradeId: id * 3 + 2, time: time(of: id), isBuyerMaker: id % 2 == 0)
        }
        if let from = shuffleFromRequest, number >= from, page.count > 2 { page.swapAt(0, 1) }
        return page
    }
}

final class MemoryTrades: TradeStoring, @unchecked Sendable {
    let lock = NSLock()
    private var rows: [Int64: AggTrade] = [:]
    /// How often each id was written, and the ids in the order written.
    private(set) var writes: [Int64: Int] = [:]
    private(set) var writeOrder: [Int64] = []

    func lastTradeId(table: TradeTable, symbol: Symbol) async throws -> Int64? { lock.withLock { rows.keys.max() } }
    func lastTradeTime(table: TradeTable, symbol: Symbol) async throws -> Int64? { lock.withLock { rows.values.map(\.time).max() } }
    func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int {
        lock.withLock {
            for t in trades { rows[t.id] = t; writes[t.id, default: 0] += 1; writeOrder.append(t.id) }
            return trades.count
        }
    }
    func ids() -> [Int64] { lock.withLock { rows.keys.sorted() } }
}

/// Funding every 8 hours from `listed`, answered oldest first.
final class FakeFunding: FundingSource, @unchecked Sendable {
    struct Request { let start: Int64; let end: Int64 }
    let listed: Int64
    var requests: [Request] = []
    var reversed = false
    init(listed: Int64) { self.listed = listed }

    func rates(from start: Int64, through end: Int64) -> [FundingRate] {
        let step: Int64 = 8 * 3_600_000
        var t = max(listed, (start + step - 1) / step * step)
        var out: [FundingRate] = []
        while t <= end {
            out.append(FundingRate(fundingTime: t, fundingRate: DecimalString(unchecked: t % 3 == 0 ? "-0.0001" : "0.0001"), markPrice: nil))
            t += step
        }
        return out
    }

    func fundingRates(symbol: Symbol, startTime: Int64, endTime: Int64, limit: Int) async throws -> [FundingRate] {
        requests.append(Request(start: startTime, end: endTime))
        let page = Array(rates(from: startTime, through: endTime).prefix(limit))
        return reversed ? page.reversed() : page
    }
}

final class MemoryFunding: FundingStoring, @unchecked Sendable {
    let lock = NSLock()
    private var rows: [Int64: FundingRate] = [:]
    func table(for market: Market) -> any FundingStoring { self }
    func lastFundingTime(symbol: Symbol) async throws -> Int64? { lock.withLock { rows.keys.max() } }
    func write(symbol: Symbol, rows new: [FundingRate]) async throws -> Int {
        lock.withLock { for r in new { rows[r.fundingTime] = r }; return new.count }
    }
    func times() -> [Int64] { lock.withLock { rows.keys.sorted() } }
}

/// The five trading data endpoints over every 5-minute time; `takerMissing` times lack the taker ratio, `silent` has none.
final class FakeMetrics: MetricsSource, @unchecked Sendable {
    struct Request { let endpoint: FuturesMetrics.Endpoint; let start: Int64; let end: Int64 }
    let lock = NSLock()
    private var log: [Request] = []
    var requests: [Request] { lock.withLock { log } }
    var takerMissing: Set<Int64> = []
    var silent: Range<Int64>?

    func metrics(_ endpoint: FuturesMetrics.Endpoint, symbol: Symbol, startTime: Int64, endTime: Int64, limit: Int) async throws
        -> [(Int64, [DecimalString])] {
        lock.withLock { log.append(Request(endpoint: endpoint, start: startTime, end: endTime)) }
        let step = FuturesMetrics.periodMilliseconds
        let first: Int64 = (startTime + step - 1) / step * step
        let all: [Int64] = Array(stride(from: first, through: endTime, by: Int(step)))
        let times = all.prefix(limit)
        return times.compactMap { (t: Int64) -> (Int64, [DecimalString])? in
            if silent?.contains(t) == true || endpoint == .taker && takerMissing.contains(t) { return nil }
            let values = endpoint == .openInterest ? ["12345.6", "98765.4"] : ["1.25"]
            return (t, values.map { DecimalString(unchecked: $0) })
        }
    }
}

final class MemoryMetrics: MetricsStoring, @unchecked Sendable {
    let lock = NSLock()
    private var stored: [Int64: FuturesMetric] = [:]
    func lastMetricTime(symbol: Symbol) async throws -> Int64? { lock.withLock { stored.keys.max() } }
    func write(symbol: Symbol, rows: [FuturesMetric]) async throws -> Int {
        lock.withLock { for r in rows { stored[r.time] = r }; return rows.count }
    }
    func rows() -> [FuturesMetric] { lock.withLock { stored.values.sorted { $0.time < $1.time } } }
}

/// Holes as the stores' window query finds them (between stored rows of one symbol, on the table's grid), and the
/// confirmed ones, over an in-memory kline or metrics store.
final class MemoryGaps: GapStoring, @unchecked Sendable {
    let lock = NSLock()
    let times: @Sendable (any GapTable) -> [Int64]
    private(set) var confirmedHoles: [KlineHole] = []

    init(store: MemoryStore) { times = { table in store.stored(table as! KlineTable, "BTCUSDT").map(\.openTime) } }
    init(metrics: MemoryMetrics) { times = { _ in metrics.rows().map(\.time) } }

    func holes(table: any GapTable, symbols: [Symbol]?, since: Int64?) async throws -> [KlineHole] {
        let step = table.interval.fixedMilliseconds ?? 0
        let stored = times(table)
        return zip(stored, stored.dropFirst()).compactMap { a, b in
            guard b - a > step, since.map({ b > $0 }) ?? true else { return nil }
            return KlineHole(symbol: "BTCUSDT", from: a + step, to: b - step, missing: (b - a) / step - 1)
        }
    }
    func confirmed(table: any GapTable) async throws -> Set<KlineHole> { lock.withLock { Set(confirmedHoles) } }
    func recordConfirmed(table: any GapTable, holes: [KlineHole]) async throws { lock.withLock { confirmedHoles += holes } }
    func forget(table: any GapTable, symbols: [Symbol]?) async throws { lock.withLock { confirmedHoles.removeAll() } }
}
