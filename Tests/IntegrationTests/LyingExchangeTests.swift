import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import MariaDBStore
import StoreKit
import TestSupport
import Testing

/// An exchange whose every answer parses but lies in one way (binance-sim's `lie-*` faults): the page is refused
/// whole, retried, and the unit fails with nothing of it stored; one lie among good answers costs a retry and the
/// data ends exact. The clock moves on whenever the run waits (a retry's backoff), so nothing here waits for real.
@Suite("A page is trusted whole or not at all", .serialized, .timeLimit(.minutes(3)))
struct LyingExchangeTests {
    typealias E2E = KlinesEndToEndTests
    static let now = E2E.now
    static let hour: Int64 = 3_600_000

    struct Case: Sendable, CustomTestStringConvertible {
        let kind: FaultKind
        let command: [String]
        let table: String
        let message: String
        var testDescription: String { "\(kind.rawValue) on \(command[0])" }
    }

    static func faults(_ plans: [FaultPlan]) -> BinanceSimulator.Configuration {
        var configuration = BinanceSimulator.Configuration()
        configuration.faults = plans
        return configuration
    }

    static let fundingStart = "2024-01-01"
    static let tradesStart = UTCCalendar.iso8601(KlinesEndToEndTests.now - 150 * 60_000).replacingOccurrences(of: ".000Z", with: "")

    static let cases: [Case] = [
        Case(kind: .descending, command: ["klines", "--timeframes", "15m", "--lookback-hours", "72"], table: "klines_m15", message: "out of order"),
        Case(kind: .duplicate, command: ["klines", "--timeframes", "15m", "--lookback-hours", "72"], table: "klines_m15", message: "appears twice"),
        Case(kind: .highBelowLow, command: ["klines", "--timeframes", "15m", "--lookback-hours", "72"], table: "klines_m15", message: "is above high"),
        Case(kind: .farFuture, command: ["klines", "--timeframes", "15m", "--lookback-hours", "72"], table: "klines_m15", message: "after the requested endTime"),
        Case(kind: .farFuture, command: ["funding", "--start", fundingStart], table: "funding_rates", message: "outside the requested"),
        Case(kind: .wrongSymbol, command: ["funding", "--start", fundingStart], table: "funding_rates", message: "not the BTCUSDT asked for"),
        Case(kind: .tradeIds, command: ["trades", "--start", tradesStart], table: "agg_trades", message: "after its last"),
        Case(kind: .tradeTimes, command: ["trades", "--start", tradesStart], table: "agg_trades", message: "before the one before it"),
    ]

    @Test("an exchange that always lies: the unit is retried, then fails; nothing of a lying page is stored", arguments: cases)
    func alwaysLying(_ c: Case) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(configuration: Self.faults([FaultPlan(kind: c.kind)]), clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await clock.drive(step: 1_000) { await HistoryJobsTests.cli(c.command + ["--symbols", "BTCUSDT", "--unit-retries", "1"], sim: sim, db: db, clock: clock) }
        #expect(run.status == 1, "\(run.errors)")
        #expect(run.output.contains(c.message) || run.errors.contains(c.message), "\(run.output)\n\(run.errors)")
        #expect(try await db.count(c.table) == 0)
        #expect(run.output.contains("\"retries\":1"), "\(run.output)")
    }

    @Test("one lie among good answers: refused, retried, and the data ends exact", arguments: cases.filter { $0.command[0] == "klines" })
    func oneLie(_ c: Case) async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(configuration: Self.faults([FaultPlan(kind: c.kind, count: 1)]), clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = try await clock.drive(step: 1_000) { await HistoryJobsTests.cli(c.command + ["--symbols", "BTCUSDT", "--page-limit", "100"], sim: sim, db: db, clock: clock) }
        #expect(run.status == 0, "\(run.errors)")
        try await E2E.expectExact(db, sim, table: KlineTable(market: .futures, interval: .m15), symbol: "BTCUSDT",
                                  from: KlineInterval.m15.openTime(containing: Self.now - 72 * Self.hour), through: Self.now)
    }

    @Test("one lying funding or trades page among good ones: retried, and the data ends exact")
    func oneLieFundingAndTrades() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(configuration: Self.faults([
            FaultPlan(kind: .wrongSymbol, count: 1), FaultPlan(kind: .tradeTimes, count: 1),
        ]), clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let funding = try await clock.drive(step: 1_000) { await HistoryJobsTests.cli(["funding", "--symbols", "BTCUSDT", "--start", Self.fundingStart], sim: sim, db: db, clock: clock) }
        #expect(funding.status == 0, "\(funding.errors)")
        let expected = await sim.simulator.expectedFundingRates(symbol: "BTCUSDT", from: UTCCalendar.parse(Self.fundingStart)!, through: Self.now)
        #expect(try await db.count("funding_rates") == expected.count)
        let trades = try await clock.drive(step: 1_000) { await HistoryJobsTests.cli(["trades", "--symbols", "BTCUSDT", "--start", Self.tradesStart], sim: sim, db: db, clock: clock) }
        #expect(trades.status == 0, "\(trades.errors)")
        let ids = try await TradeStore(pool: db.pool).ids(table: TradeTable(market: .futures), symbol: try Symbol(validating: "BTCUSDT"))
        let first = try #require(ids.first?.0)
        #expect(ids.map(\.0) == (await sim.simulator.expectedAggTrades(symbol: "BTCUSDT", fromId: first, throughTime: Self.now)).map(\.id))
    }

    @Test("candle checks: what always holds on Binance")
    func candleSanity() throws {
        let good = Kline(openTime: 0, open: .init(unchecked: "10"), high: .init(unchecked: "12"), low: .init(unchecked: "9"),
                         close: .init(unchecked: "11"), volume: .init(unchecked: "5"), closeTime: 59_999, quoteAssetVolume: .init(unchecked: "50"),
                         numberOfTrades: 3, takerBuyBaseAssetVolume: .init(unchecked: "2"), takerBuyQuoteAssetVolume: .init(unchecked: "20"))
        try good.validate(interval: .m1)
        var k = good; k.low = .init(unchecked: "0"); k.open = .init(unchecked: "0")
        #expect(throws: KlineValidationError.self) { try k.validate(interval: .m1) }
        k = good; k.takerBuyBaseAssetVolume = .init(unchecked: "5.00000001")
        #expect(throws: KlineValidationError.self) { try k.validate(interval: .m1) }
        k = good; k.takerBuyQuoteAssetVolume = .init(unchecked: "50.1")
        #expect(throws: KlineValidationError.self) { try k.validate(interval: .m1) }
        k = good; k.takerBuyBaseAssetVolume = .init(unchecked: "5.000")  // equal is fine
        try k.validate(interval: .m1)
    }
}
