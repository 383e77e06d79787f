import BinanceAPI
import Clocks
import Foundation
import Logging
import Pipeline
import StoreKit
import Testing

/// The live follower's rules, against fake streams, a fake REST source and an in-memory store: no network, no
/// database; time moves only when the test moves it.
@Suite("live follow: the follower's rules", .timeLimit(.minutes(1)))
struct FollowTests {
    static let start: Int64 = 1_704_067_200_000  // 2024-01-01T00:00:00Z
    static let minute: Int64 = 60_000
    let symbol = try! Symbol(validating: "BTCUSDT")

    func candle(_ n: Int64, price: String = "10.5") -> Kline { FakeSource.kline(Self.start + n * Self.minute, .m1, price: price) }

    // MARK: The state

    @Test("a final event is written once; a repeat and the open candle never")
    func finalsOnce() {
        var state = KlineFollowState(interval: .m1, stored: Self.start)
        #expect(state.receive(candle(1), final: false, now: Self.start + 90_000).isEmpty, "the open candle is never written")
        #expect(state.receive(candle(1), final: true, now: Self.start + 2 * Self.minute) == [.write(candle(1))])
        state.wrote(candle(1))
        #expect(state.receive(candle(1), final: true, now: Self.start + 2 * Self.minute + 10).isEmpty, "a final that comes twice")
        #expect(state.duplicates == 1 && state.stored == candle(1).openTime)
    }

    @Test("a final that never comes: REST is asked once a later candle's events arrive past the grace, not before")
    func missedFinal() {
        var state = KlineFollowState(interval: .m1, stored: Self.start, missingAfter: 3_000)
        let closeOf1 = Self.start + 2 * Self.minute
        // Candle 2's first events: candle 1's final may still be on its way.
        #expect(state.receive(candle(2), final: false, now: closeOf1 + 1_000).isEmpty)
        #expect(state.receive(candle(2), final: false, now: closeOf1 + 3_000) == [.fetch(from: candle(1).openTime, through: candle(1).openTime)])
        state.fetched(from: candle(1).openTime, through: candle(1).openTime, newest: candle(1).openTime)
        #expect(state.missedFinals == 1)
        // It comes after all, late: REST gave it already.
        #expect(state.receive(candle(1), final: true, now: closeOf1 + 4_000).isEmpty)
    }

    @Test("a final after a hole fetches the hole first, then is written; older missing candles never wait for the grace")
    func holeThenFinal() {
        var state = KlineFollowState(interval: .m1, stored: Self.start)
        #expect(state.receive(candle(4), final: true, now: Self.start + 5 * Self.minute)
                == [.fetch(from: candle(1).openTime, through: candle(3).openTime), .write(candle(4))])
        var other = KlineFollowState(interval: .m1, stored: Self.start)
        // Candle 4 is open; 3 may still get its final, 1 and 2 cannot.
        #expect(other.receive(candle(4), final: false, now: Self.start + 4 * Self.minute + 500)
                == [.fetch(from: candle(1).openTime, through: candle(2).openTime)])
    }

    @Test("every candle written from the stream is confirmed by one request once due; REST's different values are the corrections")
    func confirmation() {
        var state = KlineFollowState(interval: .m1, stored: Self.start, confirmAfter: 10_000)
        for n in Int64(1)...3 { state.wrote(candle(n)) }
        #expect(state.confirmationDue(now: Self.start + 2 * Self.minute + 9_999) == nil)
        let due = state.confirmationDue(now: Self.start + 2 * Self.minute + 10_000)
        #expect(due == candle(1).openTime...candle(3).openTime, "one stretch for every unconfirmed candle")
        let (corrections, confirmed) = state.confirm(due!, rest: [candle(1), candle(2, price: "10.6"), candle(3)])
        #expect(corrections == [candle(2, price: "10.6")] && confirmed == 3)
        #expect(state.unconfirmed.isEmpty && state.confirmationDue(now: .max) == nil)
    }

    // MARK: The inbox

    @Test("the inbox keeps order, coalesces ticks, and when full drops the oldest events, counting them")
    func inbox() async {
        let inbox = FollowInbox(capacity: 3)
        inbox.push(.tick(1))
        inbox.push(.tick(2))
        inbox.push(.connected(at: 1))
        inbox.push(.kline(candle(1), final: true, arrived: 5))
        inbox.push(.kline(candle(2), final: true, arrived: 6))
        #expect(inbox.dropped == 1 && inbox.count == 3)
        #expect(await inbox.next() == .connected(at: 1))
        #expect(await inbox.next() == .kline(candle(1), final: true, arrived: 5))
        #expect(await inbox.next() == .kline(candle(2), final: true, arrived: 6))
        inbox.finish()
        #expect(await inbox.next() == nil)
    }

    // MARK: The follower

    @Test("the follower catches up from the store, writes finals as they come, fills a lost final from REST, and REST corrects a lie")
    func follower() async throws {
        let clock = ManualClock(now: Self.start + 10 * Self.minute + 5_000)
        let source = FakeSource(listed: Self.start..<Int64.max, now: { clock.now() })
        let store = MemoryStore()
        let unit = ExtractionUnit(market: .futures, symbol: symbol, interval: .m1)
        let table = unit.table!
        _ = try await store.write(table: table, symbol: symbol, klines: (0...4).map { candle($0) })
        let inbox = FollowInbox()
        var settings = KlineFollower.Settings()
        settings.confirmAfter = 10_000
        let follower = KlineFollower(unit: unit, inbox: inbox, source: source, writer: FollowWriter(store: store), clock: clock, settings: settings,
                                     logger: Logger(label: "test"))
        let run = Task { try await follower.run(.first) }
        let rows = { store.stored(table, "BTCUSDT") }
        // The catch-up stores 5...9 (the open candle 10 is not).
        await inbox.idle()
        #expect(rows().count == 10)
        // Candle 10 closes; its final comes with a value REST will not confirm.
        clock.set(Self.start + 11 * Self.minute + 100)
        inbox.push(.kline(candle(10, price: "99"), final: true, arrived: clock.now()))
        await inbox.idle()
        #expect(rows().count == 11 && rows()[10].close.text == "99", "the stream's candle is written at once")
        // Candle 11's final never comes: candle 12's events, past the grace, bring it from REST.
        clock.set(Self.start + 12 * Self.minute + 5_000)
        inbox.push(.kline(candle(12), final: false, arrived: clock.now()))
        await inbox.idle()
        #expect(rows().count == 12)
        // Confirmation is due 10 s after candle 10 closed: REST's values replace the stream's.
        inbox.push(.tick(clock.now()))
        await inbox.idle()
        inbox.finish()
        let outcome = try await run.value
        let stored = store.stored(table, "BTCUSDT")
        #expect(stored.map(\.openTime) == (0...11).map { candle($0).openTime }, "no hole, no open candle")
        #expect(stored[10] == candle(10), "REST's values replaced the stream's")
        #expect(outcome.fromStream == 1 && outcome.corrected == 1 && outcome.missedFinals == 1)
        #expect(!stored.contains { $0.openTime == candle(12).openTime })
    }

    @Test("a stream URL's credentials never reach a message")
    func urlCredentialsHidden() {
        let error = StreamConnectError(url: "wss://user:secretpw@stream.example/market/stream?streams=btcusdt@kline_1m", reason: "refused")
        #expect(!error.description.contains("secretpw") && error.description.contains("stream.example"))
    }

    // MARK: The hub

    @Test("the hub routes each stream's events to its unit, tells every unit of each connection, and reconnects after a drop")
    func hubReconnects() async throws {
        let clock = ManualClock(now: Self.start)
        let connector = FakeConnector()
        let inbox = FollowInbox()
        let stream = MarketStream.kline(symbol, .m1)
        let hub = StreamHub(url: "ws://sim/stream?streams=\(stream.name)", inboxes: [stream.name: inbox], connector: connector,
                            attempts: ConnectionAttempts(), clock: clock, settings: .init(silenceAfter: 60_000), logger: Logger(label: "test"))
        let run = Task { await hub.run() }
        let first = try await connector.nextConnection()
        #expect(await inbox.next() == .connected(at: Self.start))
        first.send(#"{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":1704067200000,"T":1704067259999,"s":"BTCUSDT","i":"1m","o":"10.5","c":"10.5","h":"11","l":"10","v":"1.5","n":3,"x":true,"q":"15.75","V":"0.5","Q":"5.25"}}}"#)
        first.send(#"{"stream":"ethusdt@kline_1m","data":{"e":"kline","E":1,"s":"ETHUSDT","k":{"t":1704067200000,"T":1704067259999,"s":"ETHUSDT","i":"1m","o":"1","c":"1","h":"1","l":"1","v":"1","n":1,"x":true,"q":"1","V":"0","Q":"0"}}}"#)
        first.send("not json")
        let event = await inbox.next()
        #expect(event == .kline(candle(0), final: true, arrived: Self.start))
        first.drop()
        // The backoff passes at once on the manual clock; the second connection tells the unit again.
        let second = try await clock.drive(step: 1_000) { try await connector.nextConnection() }
        var sawConnected = false
        while let input = await inbox.next() {
            if case .connected = input { sawConnected = true; break }
        }
        #expect(sawConnected)
        #expect(hub.statistics.refused == 1 && hub.statistics.connections == 2 && hub.statistics.reconnects == 1)
        run.cancel()
        await run.value
        _ = second
    }
}

/// Connections a test drives by hand.
final class FakeConnector: StreamConnector, @unchecked Sendable {
    private let (made, madeContinuation) = AsyncStream.makeStream(of: FakeConnection.self)
    private let lock = NSLock()
    private var iterator: AsyncStream<FakeConnection>.AsyncIterator?

    func connect(url: String) async throws -> any StreamConnection {
        let connection = FakeConnection()
        madeContinuation.yield(connection)
        return connection
    }

    /// The next connection the hub opened (awaits it).
    func nextConnection() async throws -> FakeConnection {
        var it = lock.withLock { iterator ?? made.makeAsyncIterator() }
        guard let next = await it.next() else { throw CancellationError() }
        lock.withLock { iterator = it }
        return next
    }
}

final class FakeConnection: StreamConnection, @unchecked Sendable {
    let messages: AsyncThrowingStream<String, any Error>
    private let continuation: AsyncThrowingStream<String, any Error>.Continuation

    init() { (messages, continuation) = AsyncThrowingStream.makeStream(of: String.self) }

    func send(_ text: String) { continuation.yield(text) }
    func drop() { continuation.finish(throwing: StreamConnectError(url: "fake", reason: "dropped")) }
    func close() async { continuation.finish() }
}
