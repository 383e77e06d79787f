import BinanceAPI
import Clocks
import FlyingFox
import Foundation

/// What can go wrong with a stream connection, as a real network and Binance make it go wrong.
public enum StreamFault: Sendable, Equatable {
    /// The upgrade is answered with this HTTP status instead (a 429, a 503 during maintenance).
    case refuse(status: Int)
    /// The connection ends without a close frame after this many messages (a dropped TCP connection).
    case dropAfter(messages: Int)
    /// Nothing is sent any more after this many messages (no events, no pings); the connection stays open.
    case silentAfter(messages: Int)
    /// A final event is sent twice.
    case finalTwice
    /// A final event comes this long after the next candle's first events.
    case finalLate(milliseconds: Int64)
    /// A final event never comes.
    case finalNever
    /// A final event's close differs from what REST answers for the candle (REST is the exchange's record).
    case finalLies
    /// Spot: a `serverShutdown` event after this many messages, then the connection is closed 10 s of the clock later
    /// (Binance does not say how soon; a client that reacts at once has a replacement streaming well before).
    case serverShutdownAfter(messages: Int)
    /// Aggregate trades whose id is a multiple of this never come on the stream (REST has them).
    case tradesSkipped(every: Int64)
    /// Every aggregate trade is sent twice.
    case tradesTwice
}

/// A stream fault for the connections numbered `connections` (0 for the first the simulator accepts; nil: every one).
public struct StreamFaultPlan: Sendable, Equatable {
    public var fault: StreamFault
    public var connections: Range<Int>?
    public init(_ fault: StreamFault, connections: Range<Int>? = nil) {
        self.fault = fault
        self.connections = connections
    }

    /// `KIND[:N][@FIRST..END]` (binance-sim's `--stream-fault`): refuse:STATUS, drop:MESSAGES, silent:MESSAGES,
    /// final-twice, final-late:MS, final-never, final-lies, server-shutdown:MESSAGES, trades-skipped:EVERY,
    /// trades-twice; `@0..2`: the first two connections only.
    public init?(parsing text: String) {
        let pieces = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let spec = pieces[0]
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        let n = parts.count == 2 ? Int64(parts[1]) : nil
        if parts.count == 2 && (n ?? -1) < 0 { return nil }
        switch (parts[0], n) {
        case ("refuse", let n?): fault = .refuse(status: Int(n))
        case ("drop", let n?): fault = .dropAfter(messages: Int(n))
        case ("silent", let n?): fault = .silentAfter(messages: Int(n))
        case ("final-twice", nil): fault = .finalTwice
        case ("final-late", let n?): fault = .finalLate(milliseconds: n)
        case ("final-never", nil): fault = .finalNever
        case ("final-lies", nil): fault = .finalLies
        case ("server-shutdown", let n?): fault = .serverShutdownAfter(messages: Int(n))
        case ("trades-skipped", let n?) where n > 0: fault = .tradesSkipped(every: n)
        case ("trades-twice", nil): fault = .tradesTwice
        default: return nil
        }
        if pieces.count == 1 {
            connections = nil
        } else {
            let bounds = pieces[1].components(separatedBy: "..")
            guard bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a >= 0, a < b else { return nil }
            connections = a..<b
        }
    }
}

/// The stream rules the simulator enforces and follows, per market (spot "WebSocket Streams", USD-M and COIN-M
/// "Websocket Market Streams" on developers.binance.com).
public struct StreamRules: Sendable {
    /// Pings every `pingEvery`; a connection whose pong (with the ping's payload) has not come within `pongWithin` is
    /// dropped.
    public var pingEvery: Int64
    public var pongWithin: Int64
    /// "A single connection ... is only valid for 24 hours": the server closes it then (compress it for tests).
    public var lifetime: Int64 = StreamConnectionLimits.connectionLifetimeMilliseconds
    /// "WebSocket connections have a limit of N incoming messages per second": beyond it the connection is dropped.
    public var incomingPerSecond: Int
    /// Streams one connection may carry; more are refused at the upgrade (HTTP 400).
    public var maxStreams: Int

    public static func of(_ market: Market) -> StreamRules {
        let ping = market.streamPing
        return StreamRules(pingEvery: ping.every, pongWithin: ping.pongWithin, incomingPerSecond: market.maxIncomingMessagesPerSecond,
                           maxStreams: market.maxStreamsPerConnection)
    }
}

extension BinanceSimulator {
    /// Which market a stream path is for: `/market/stream` is USD-M (its routed path), `/dstream/stream` COIN-M
    /// (binance-sim's own prefix: one port serves every market), anything else spot.
    static func streamMarket(path: String) -> Market {
        if path.hasPrefix("/market/") { return .futures }
        if path.hasPrefix("/dstream/") { return .coinm }
        return .spot
    }

    /// A WebSocket upgrade for `/stream?streams=a/b` (combined) or `/ws/a/b` (raw), under any prefix.
    func streamUpgrade(_ request: HTTPRequest) async -> HTTPResponse {
        let path = request.path
        let market = Self.streamMarket(path: path)
        let names: [String]
        let combined: Bool
        if path.hasSuffix("/stream") {
            names = (request.query.first { $0.name == "streams" }?.value ?? "").split(separator: "/").map(String.init)
            combined = true
        } else if let range = path.range(of: "/ws/") {
            names = path[range.upperBound...].split(separator: "/").map(String.init)
            combined = false
        } else {
            return HTTPResponse(statusCode: .notFound, body: Data("unknown stream path \(path)".utf8))
        }
        // "300 connections per attempt every 5 minutes per IP".
        let now = clock.now()
        streamAttempts.removeAll { $0 <= now - StreamConnectionLimits.windowMilliseconds }
        streamAttempts.append(now)
        guard streamAttempts.count <= StreamConnectionLimits.attemptsPerWindow else {
            return HTTPResponse(statusCode: .tooManyRequests, body: Data("too many connection attempts".utf8))
        }
        let index = streamConnections
        streamConnections += 1
        let faults = streamFaults.filter { $0.connections?.contains(index) ?? true }.map(\.fault)
        for case .refuse(let status) in faults {
            return HTTPResponse(statusCode: HTTPStatusCode(status, phrase: "Refused"), body: Data("refused".utf8))
        }
        let rules = streamRules[market] ?? .of(market)
        guard !names.isEmpty, names.count <= rules.maxStreams else {
            return HTTPResponse(statusCode: .badRequest, body: Data("a connection carries 1 to \(rules.maxStreams) streams; asked \(names.count)".utf8))
        }
        var streams: [StreamSession.Stream] = []
        for name in names {
            // "All symbols for streams are lowercase": `btcusdt@kline_1m`, `btcusdt@aggTrade`.
            let parts = name.split(separator: "@", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0] == parts[0].lowercased(),
                  let symbol = market.symbolsListed(in: self.market).first(where: { $0.name.lowercased() == parts[0] }) else {
                return HTTPResponse(statusCode: .badRequest, body: Data("unknown stream \(name)".utf8))
            }
            if parts[1] == "aggTrade" {
                streams.append(.init(name: name, symbol: symbol, interval: nil))
                continue
            }
            guard parts[1].hasPrefix("kline_"), let interval = KlineInterval(rawValue: String(parts[1].dropFirst("kline_".count))) else {
                return HTTPResponse(statusCode: .badRequest, body: Data("unknown stream \(name)".utf8))
            }
            streams.append(.init(name: name, symbol: symbol, interval: interval))
        }
        stats.streamConnections += 1
        let session = StreamSession(simulator: self, clock: clock, market: market, rules: rules, streams: streams, combined: combined, faults: faults)
        do { return try await WebSocketHTTPHandler(handler: session).handleRequest(request) } catch {
            return HTTPResponse(statusCode: .badRequest, body: Data("not a WebSocket upgrade: \(error)".utf8))
        }
    }

    /// The candle a stream shows at `now`: its final values once closed, and whether a fault makes the final lie.
    func streamKline(symbol: SimulatedSymbol, interval: KlineInterval, openTime: Int64, now: Int64) -> Kline? {
        market.kline(symbol: symbol, interval: interval, openTime: openTime, now: now)
    }

    func countStreamMessage() { stats.streamMessages += 1 }

    /// The aggregate trades of `symbol` with ids after `after` (nil: none yet, start from the newest) traded by `now`.
    func streamTrades(symbol: SimulatedSymbol, after: Int64?, now: Int64) -> [AggTrade] {
        let newest = market.aggTrades(symbol: symbol, fromId: nil, start: nil, end: nil, limit: 1, now: now)
        guard let last = newest.last else { return [] }
        guard let after else { return [last] }
        guard last.id > after else { return [] }
        return market.aggTrades(symbol: symbol, fromId: after + 1, start: nil, end: nil, limit: 1_000, now: now)
    }
}

extension Market {
    /// The simulated symbols this market's streams serve (COIN-M: contracts; spot and USD-M: the others).
    func symbolsListed(in market: SimulatedMarket) -> [SimulatedSymbol] {
        market.symbols.values.filter { self == .coinm ? $0.contractSize != nil : $0.contractSize == nil }
    }
}

/// One stream connection: events on the simulator's clock, pings, the rules and the faults.
struct StreamSession: WSHandler {
    struct Stream: Sendable {
        let name: String
        let symbol: SimulatedSymbol
        /// nil: the symbol's aggregate trades (`<symbol>@aggTrade`).
        let interval: KlineInterval?
    }

    let simulator: BinanceSimulator
    let clock: any WallClock
    let market: Market
    let rules: StreamRules
    let streams: [Stream]
    let combined: Bool
    let faults: [StreamFault]

    func makeFrames(for client: AsyncThrowingStream<WSFrame, any Error>) async throws -> AsyncStream<WSFrame> {
        let (frames, out) = AsyncStream.makeStream(of: WSFrame.self)
        let pongs = PongLedger()
        let reader = Task {
            // The client's frames: pongs are checked against the ping they answer; too many messages a second drop it.
            var second: Int64 = -1, inSecond = 0
            do {
                for try await frame in client {
                    let now = clock.now()
                    if now / 1000 != second { (second, inSecond) = (now / 1000, 0) }
                    inSecond += 1
                    if inSecond > rules.incomingPerSecond {
                        out.finish()  // "A connection that goes beyond the limit will be disconnected"
                        return
                    }
                    switch frame.opcode {
                    case .pong: pongs.answered(frame.payload)
                    case .ping: out.yield(WSFrame(fin: true, opcode: .pong, mask: nil, payload: frame.payload))
                    case .close:
                        out.yield(WSFrame.close(message: ""))
                        out.finish()
                        return
                    default: continue
                    }
                }
            } catch {}
            out.finish()
        }
        let writer = Task { await serve(out, pongs: pongs) }
        out.onTermination = { _ in
            reader.cancel()
            writer.cancel()
        }
        return frames
    }

    /// Sends events every update period, pings, and ends the connection as the rules and faults say.
    private func serve(_ out: AsyncStream<WSFrame>.Continuation, pongs: PongLedger) async {
        let opened = clock.now()
        var lastOpen: [String: Int64] = [:]
        var late: [(due: Int64, text: String)] = []
        var sent = 0
        var nextPing = opened + rules.pingEvery
        var shutdownAt: Int64?
        // Kline streams update every 250 ms (futures) or 1-2 s (spot); USD-M's aggregate trades every 100 ms ("Update
        // Speed: 100ms"), spot's in real time (100 ms here).
        let period = streams.map { $0.interval.map(market.klineUpdateMilliseconds) ?? 100 }.min() ?? 1_000
        var lastTrade: [String: Int64] = [:]
        var tick = opened
        func send(_ text: String) -> Bool {
            sent += 1
            for fault in faults {
                switch fault {
                case .dropAfter(let n) where sent > n:
                    out.finish()  // no close frame: the TCP connection just ends
                    return false
                case .silentAfter(let n) where sent > n:
                    return true
                case .serverShutdownAfter(let n) where sent == n && market == .spot && shutdownAt == nil:
                    out.yield(WSFrame.text(#"{"e":"serverShutdown","E":\#(clock.now())}"#))
                    shutdownAt = clock.now() + 10_000
                default: continue
                }
            }
            out.yield(WSFrame.text(text))
            Task { await simulator.countStreamMessage() }
            return true
        }
        while !Task.isCancelled {
            let now = clock.now()
            if now - opened >= rules.lifetime || shutdownAt.map({ now >= $0 }) == true {
                out.yield(WSFrame.close())  // a normal closure, as at Binance's 24-hour mark
                out.finish()
                return
            }
            if let waiting = pongs.outstanding, now - waiting.sentAt > rules.pongWithin {
                out.finish()  // no pong within the deadline: dropped
                return
            }
            if now >= nextPing && !faults.contains(where: { if case .silentAfter(let n) = $0 { sent >= n } else { false } }) {
                let payload = Data("\(now)".utf8)
                pongs.pinged(payload, at: now)
                out.yield(WSFrame(fin: true, opcode: .ping, mask: nil, payload: payload))
                nextPing = now + rules.pingEvery
            }
            for stream in streams {
                guard let interval = stream.interval else {
                    // Aggregate trades: each once it has traded, in id order ("Aggregate Trade Streams").
                    let trades = await simulator.streamTrades(symbol: stream.symbol, after: lastTrade[stream.name], now: now)
                    if let last = trades.last { lastTrade[stream.name] = last.id }
                    for trade in trades {
                        if faults.contains(where: { if case .tradesSkipped(let n) = $0 { trade.id % n == 0 } else { false } }) { continue }
                        let text = tradeEvent(stream, trade, now: now)
                        guard send(text) else { return }
                        if faults.contains(.tradesTwice) { guard send(text) else { return } }
                    }
                    continue
                }
                let open = interval.openTime(containing: now)
                var messages: [String] = []
                if let previous = lastOpen[stream.name], previous < open {
                    // The candles that closed since the last update: their final events.
                    var t = previous
                    while t < open {
                        if var kline = await simulator.streamKline(symbol: stream.symbol, interval: interval, openTime: t, now: now) {
                            if faults.contains(.finalLies) { kline.close = kline.close == kline.high ? kline.low : kline.high }
                            let text = event(stream, interval, kline, final: true, now: now)
                            if faults.contains(.finalNever) {
                            } else if case .finalLate(let delay)? = faults.first(where: { if case .finalLate = $0 { true } else { false } }) {
                                late.append((now + delay, text))
                            } else {
                                messages.append(text)
                                if faults.contains(.finalTwice) { messages.append(text) }
                            }
                        }
                        t = interval.nextOpenTime(after: t)
                    }
                }
                lastOpen[stream.name] = open
                if let kline = await simulator.streamKline(symbol: stream.symbol, interval: interval, openTime: open, now: now) {
                    messages.append(event(stream, interval, kline, final: false, now: now))
                }
                for text in messages { guard send(text) else { return } }
            }
            let due = late.filter { $0.due <= now }
            late.removeAll { $0.due <= now }
            for item in due { guard send(item.text) else { return } }
            tick += period
            do { try await clock.sleep(until: max(tick, clock.now() + 1)) } catch { return }
        }
    }

    /// A kline event as Binance sends it ("Kline/Candlestick Streams"), combined or raw.
    private func event(_ stream: Stream, _ interval: KlineInterval, _ k: Kline, final: Bool, now: Int64) -> String {
        let s = stream.symbol.name
        let payload = #"{"e":"kline","E":\#(now),"s":"\#(s)","k":{"t":\#(k.openTime),"T":\#(k.closeTime),"s":"\#(s)","i":"\#(interval.rawValue)","f":100,"L":200,"o":"\#(k.open.text)","c":"\#(k.close.text)","h":"\#(k.high.text)","l":"\#(k.low.text)","v":"\#(k.volume.text)","n":\#(k.numberOfTrades),"x":\#(final),"q":"\#(k.quoteAssetVolume.text)","V":"\#(k.takerBuyBaseAssetVolume.text)","Q":"\#(k.takerBuyQuoteAssetVolume.text)","B":"0"}}"#
        return combined ? #"{"stream":"\#(stream.name)","data":\#(payload)}"# : payload
    }

    /// An aggregate trade event as Binance sends it ("Aggregate Trade Streams": e, E, s, a, p, q, f, l, T, m; spot adds
    /// the ignored "M").
    private func tradeEvent(_ stream: Stream, _ t: AggTrade, now: Int64) -> String {
        let spot = market == .spot ? #","M":true"# : ""
        let payload = #"{"e":"aggTrade","E":\#(now),"s":"\#(stream.symbol.name)","a":\#(t.id),"p":"\#(t.price.text)","q":"\#(t.quantity.text)","f":\#(t.firstTradeId),"l":\#(t.lastTradeId),"T":\#(t.time),"m":\#(t.isBuyerMaker)\#(spot)}"#
        return combined ? #"{"stream":"\#(stream.name)","data":\#(payload)}"# : payload
    }
}

/// The ping waiting for its pong.
final class PongLedger: @unchecked Sendable {
    private let lock = NSLock()
    private var waiting: (payload: Data, sentAt: Int64)?

    func pinged(_ payload: Data, at time: Int64) {
        lock.withLock { if waiting == nil { waiting = (payload, time) } }
    }

    /// A pong counts only with the payload of the ping it answers (RFC 6455 §5.5.3).
    func answered(_ payload: Data) {
        lock.withLock { if waiting?.payload == payload { waiting = nil } }
    }

    var outstanding: (payload: Data, sentAt: Int64)? { lock.withLock { waiting } }
}

extension WSFrame {
    static func text(_ text: String) -> WSFrame { WSFrame(fin: true, opcode: .text, mask: nil, payload: Data(text.utf8)) }
}
