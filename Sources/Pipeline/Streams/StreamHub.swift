import BinanceAPI
import Clocks
import Foundation
import HTTPTransport
import Logging
import Tracing

/// One WebSocket connection's worth of streams (at most the market's `maxStreamsPerConnection`), kept open for as long
/// as the follower runs: it reads the combined stream, hands each checked event to its unit's `FollowInbox`, and
/// tells every unit when a (new) connection carries its stream, so each catches up while the events queue.
///
/// Binance's rules ("WebSocket Streams", "Websocket Market Streams"), followed:
/// - a connect that is refused or fails is tried again after an exponential backoff with full jitter, and no more than
///   300 attempts in 5 minutes leave the process (`ConnectionAttempts`), so an outage never becomes a storm;
/// - "A single connection ... is only valid for 24 hours": the connection is replaced before that (`renewAfter`), and
///   when spot announces `serverShutdown`: the replacement is streaming before the old one is closed, so no event is
///   missed (the units write each candle once, whichever connection brought it);
/// - a connection that goes silent (no message for `silenceAfter`, several update periods of its streams) is replaced.
public struct StreamHub: Sendable {
    public struct Settings: Sendable {
        /// No message for this long (ms): the connection is replaced.
        public var silenceAfter: Int64
        /// The connection is replaced after this long (ms), before Binance's 24-hour cut.
        public var renewAfter: Int64 = StreamConnectionLimits.connectionLifetimeMilliseconds - 15 * 60_000
        /// Waits between failed connects (full jitter), reset once a connection has lived `healthyAfter`.
        public var backoff = Backoff(baseMilliseconds: 1_000, capMilliseconds: 60_000)
        public var healthyAfter: Int64 = 60_000
        /// How often units are told the time (confirmations, finals that never came).
        public var tickEvery: Int64 = 1_000

        public init(silenceAfter: Int64) { self.silenceAfter = silenceAfter }

        /// Silence is ten update periods of the market's kline streams, and never under 5 s.
        public static func standard(market: Market, intervals: [KlineInterval]) -> Settings {
            let period = intervals.map(market.klineUpdateMilliseconds).max() ?? 2_000
            return Settings(silenceAfter: max(10 * period, 5_000))
        }
    }

    public let url: String
    /// The URL as logs show it: without credentials (a base URL may carry userinfo; it is never printed).
    var shownURL: String { URLCredentials.redacted(url) }
    let inboxes: [String: FollowInbox]
    let connector: any StreamConnector
    let attempts: ConnectionAttempts
    let clock: any WallClock
    let settings: Settings
    let logger: Logger
    let counters = HubCounters()
    let monitor: FollowMonitor?

    public init(url: String, inboxes: [String: FollowInbox], connector: any StreamConnector, attempts: ConnectionAttempts, clock: any WallClock,
                settings: Settings, logger: Logger, monitor: FollowMonitor? = nil) {
        self.monitor = monitor
        self.url = url
        self.inboxes = inboxes
        self.connector = connector
        self.attempts = attempts
        self.clock = clock
        self.settings = settings
        self.logger = logger
    }

    /// Connections made and lost, messages read and refused, for the summary and metrics.
    public var statistics: HubCounters.Snapshot { counters.snapshot }

    /// Keeps the streams connected until the task is cancelled; then closes the connection and finishes the inboxes.
    public func run() async {
        defer { inboxes.values.forEach { $0.finish() } }
        var failures = 0
        var lastCause: String?
        while !Task.isCancelled {
            do {
                try await attempts.acquire(clock: clock)
                counters.add(\.attempts)
                let connection = try await withSpan(lastCause == nil ? "stream connect" : "stream reconnect", ofKind: .client) { span in
                    span.attributes["url.full"] = shownURL
                    span.attributes["binance_extractor.streams"] = Int64(inboxes.count)
                    if let lastCause { span.attributes["binance_extractor.reconnect_cause"] = lastCause }
                    return try await connector.connect(url: url)
                }
                let connectedAt = clock.now()
                counters.add(\.connections)
                logger.info("stream connected", metadata: ["url": "\(shownURL)", "streams": "\(inboxes.count)", "connections": "\(counters.snapshot.connections)"])
                monitor?.streaming(inboxes.keys, true)
                inboxes.values.forEach { $0.push(.connected(at: connectedAt)) }
                let cause = await serve(connection)
                if clock.now() - connectedAt >= settings.healthyAfter { failures = 0 }
                guard !Task.isCancelled else { return }
                monitor?.streaming(inboxes.keys, false)
                counters.add(\.reconnects)
                lastCause = cause
                logger.warning("stream connection lost; reconnecting", metadata: ["url": "\(shownURL)", "cause": "\(cause)"])
            } catch is CancellationError {
                return
            } catch {
                lastCause = "\(error)"
                logger.warning("stream connect failed", metadata: ["url": "\(shownURL)", "error": "\(error)", "failures": "\(failures + 1)"])
            }
            let delay = settings.backoff.delay(attempt: failures, unitRandom: Double.random(in: 0..<1))
            failures += 1
            do { try await clock.sleep(until: clock.now() + delay) } catch { return }
        }
    }

    /// Why a connection stopped serving.
    enum Ended: Sendable {
        case dropped(String)
        case closedByServer
        case silent
        case replaced(Int)
        /// The connection is due for replacement (its lifetime).
        case renew
        /// The server announced it will close the connection (spot's `serverShutdown`): replace it at once.
        case announced
    }

    /// Reads `first` (and its replacements) until one ends without a successor; returns why.
    func serve(_ first: any StreamConnection) async -> String {
        let state = ServeState(first: first, now: clock.now())
        return await withTaskGroup(of: Ended.self) { group in
            group.addTask { await pump(first, id: 0, state: state) }
            group.addTask { await watch(state) }
            group.addTask { await state.nextRenewalRequest() }
            defer { group.cancelAll() }
            while let ended = await group.next() {
                switch ended {
                case .replaced:
                    continue  // an old connection closed after its replacement streamed
                case .renew, .announced:
                    // Open the replacement; the old one closes once the new one has delivered a message.
                    do {
                        try await attempts.acquire(clock: clock)
                        counters.add(\.attempts)
                        let next = try await connector.connect(url: url)
                        counters.add(\.connections)
                        let id = state.replace(with: next, now: clock.now())
                        // The old connection streams until the new one does: nothing is lost, so no unit catches up (a
                        // final lost anyway is fetched by the unit when a later candle shows the hole).
                        logger.info("stream connection replaced before Binance's cut", metadata: ["url": "\(shownURL)"])
                        group.addTask { await pump(next, id: id, state: state) }
                    } catch {
                        logger.warning("replacement connection failed; keeping the current one", metadata: ["error": "\(error)"])
                        state.renewFailed(now: clock.now())
                    }
                    // The watcher that asked for it ended; an announcement's waiter did.
                    if case .renew = ended { group.addTask { await watch(state) } } else { group.addTask { await state.nextRenewalRequest() } }
                case .silent:
                    await state.closeAll()
                    return "no message for \(settings.silenceAfter) ms"
                case .dropped(let why):
                    await state.closeAll()
                    return why
                case .closedByServer:
                    await state.closeAll()
                    return "closed by the server"
                }
            }
            return "cancelled"
        }
    }

    /// Reads one connection's messages into the inboxes. Returns `.replaced` when it was closed for its successor.
    private func pump(_ connection: any StreamConnection, id: Int, state: ServeState) async -> Ended {
        let parser = StreamEventParser()
        var first = true
        do {
            for try await text in connection.messages {
                let now = clock.now()
                state.heard(now: now)
                if first {
                    first = false
                    await state.streaming(id)
                }
                counters.add(\.messages)
                monitor?.events(1)
                let parsed: (stream: String?, event: StreamEvent)
                do { parsed = try parser.parse(text) } catch {
                    counters.add(\.refused)
                    logger.warning("stream message refused; never stored", metadata: ["reason": "\(error)"])
                    continue
                }
                switch parsed.event {
                case .kline(_, _, let kline, let final, _):
                    guard let stream = parsed.stream, let inbox = inboxes[stream] else { continue }
                    inbox.push(.kline(kline, final: final, arrived: now))
                case .serverShutdown:
                    logger.info("Binance announced serverShutdown; opening a replacement connection", metadata: ["url": "\(shownURL)"])
                    state.requestRenewal()
                case .aggTrade(_, let trade, _):
                    guard let stream = parsed.stream, let inbox = inboxes[stream] else { continue }
                    inbox.push(.trade(trade, arrived: now))
                case .ignored:
                    continue
                }
            }
            return state.isCurrent(id) ? .closedByServer : .replaced(id)
        } catch {
            return state.isCurrent(id) ? .dropped("\(error)") : .replaced(id)
        }
    }

    /// Ticks the units, and ends the serving when the connection goes silent or is due for renewal.
    private func watch(_ state: ServeState) async -> Ended {
        while true {
            do { try await clock.sleep(until: clock.now() + settings.tickEvery) } catch { return .silent }
            let now = clock.now()
            inboxes.values.forEach { $0.push(.tick(now)) }
            if now - state.lastHeard >= settings.silenceAfter { return .silent }
            if state.lifetimeOver(now: now, after: settings.renewAfter) { return .renew }
        }
    }
}

/// What the serving of one hub shares between its readers and its watcher.
final class ServeState: @unchecked Sendable {
    private let lock = NSLock()
    private var connections: [Int: any StreamConnection]
    private var current = 0
    private var nextId = 1
    private var heardAt: Int64
    private var currentSince: Int64
    private let (renewals, renewalRequests) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    init(first: any StreamConnection, now: Int64) {
        connections = [0: first]
        heardAt = now
        currentSince = now
    }

    var lastHeard: Int64 { lock.withLock { heardAt } }
    func heard(now: Int64) { lock.withLock { heardAt = max(heardAt, now) } }
    func isCurrent(_ id: Int) -> Bool { lock.withLock { id == current } }
    /// The server announced a shutdown: the serving replaces the connection at once (`nextRenewalRequest`).
    func requestRenewal() { renewalRequests.yield() }

    /// Waits for an announcement; ends when the serving is cancelled.
    func nextRenewalRequest() async -> StreamHub.Ended {
        var iterator = renewals.makeAsyncIterator()
        return await iterator.next() != nil ? .announced : .silent
    }

    func lifetimeOver(now: Int64, after: Int64) -> Bool {
        lock.withLock { now - currentSince >= after }
    }

    func renewFailed(now: Int64) {
        lock.withLock { currentSince = now - 1 }  // the lifetime check tries again after a while, not at once
    }

    /// Makes `next` the current connection; the old one stays until `next` streams.
    func replace(with next: any StreamConnection, now: Int64) -> Int {
        lock.withLock {
            let id = nextId
            nextId += 1
            connections[id] = next
            current = id
            currentSince = now
            return id
        }
    }

    /// Connection `id` delivered its first message: the ones before it close.
    func streaming(_ id: Int) async {
        let old: [any StreamConnection] = lock.withLock {
            let older = connections.filter { $0.key < id }
            older.keys.forEach { connections[$0] = nil }
            return Array(older.values)
        }
        for connection in old { await connection.close() }
    }

    func closeAll() async {
        let all: [any StreamConnection] = lock.withLock {
            defer { connections.removeAll() }
            return Array(connections.values)
        }
        for connection in all { await connection.close() }
    }
}

/// A hub's counts.
public final class HubCounters: @unchecked Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var attempts = 0
        public var connections = 0
        public var reconnects = 0
        public var messages = 0
        public var refused = 0
    }
    private let lock = NSLock()
    private var value = Snapshot()
    func add(_ key: WritableKeyPath<Snapshot, Int>) { lock.withLock { value[keyPath: key] += 1 } }
    public var snapshot: Snapshot { lock.withLock { value } }
}

/// "300 connections per attempt every 5 minutes per IP" (spot and futures "WebSocket Limits"): every connect of the
/// process waits here for a place in the sliding window.
public actor ConnectionAttempts {
    let limit: Int
    let window: Int64
    private var times: [Int64] = []

    public init(limit: Int = StreamConnectionLimits.attemptsPerWindow, windowMilliseconds: Int64 = StreamConnectionLimits.windowMilliseconds) {
        self.limit = limit
        window = windowMilliseconds
    }

    public func acquire(clock: any WallClock) async throws {
        while true {
            let now = clock.now()
            times.removeAll { $0 <= now - window }
            if times.count < limit {
                times.append(now)
                return
            }
            try await clock.sleep(until: times[0] + window)
        }
    }
}
