import Foundation

/// One message of a combined market stream, checked: Binance's payload as a candle or a trade, or an event the
/// follower acts on (spot's `serverShutdown`).
public enum StreamEvent: Sendable, Equatable {
    /// A kline stream's update: the candle so far, and whether it is closed (`"x": true`, its final update).
    case kline(symbol: String, interval: KlineInterval, kline: Kline, final: Bool, eventTime: Int64)
    case aggTrade(symbol: String, trade: AggTrade, eventTime: Int64)
    /// Spot: the server will close this connection soon (maintenance); a replacement should be streaming first.
    case serverShutdown(eventTime: Int64)
    /// A message the follower does not use (a control answer such as `{"result":null,"id":1}`, another event type).
    case ignored
}

/// A message that is not what Binance documents: never stored, named with where and why.
public struct StreamEventError: Error, CustomStringConvertible, Equatable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "stream message refused: \(reason)" }
}

/// Parses combined-stream messages (`{"stream":"btcusdt@kline_1m","data":{...}}`, as "Combined stream events are
/// wrapped"), checking each payload as a REST answer is checked: decimals exact, the candle consistent on its own, the
/// symbol and interval those of the stream that carried it.
public struct StreamEventParser: Sendable {
    /// Messages larger than this are refused unread (a kline event is under 400 bytes).
    public static let maxMessageBytes = 64 * 1024

    public init() {}

    public func parse(_ text: String) throws(StreamEventError) -> (stream: String?, event: StreamEvent) {
        guard text.utf8.count <= Self.maxMessageBytes else { throw StreamEventError("a message of \(text.utf8.count) bytes") }
        let data = Data(text.utf8)
        // A combined message wraps the payload (`{"stream":..,"data":..}`); a raw one (a `/ws/` connection) is the payload.
        let stream: String?, payload: Payload
        do {
            let envelope = try JSONDecoder().decode(Envelope.self, from: data)
            stream = envelope.stream
            payload = try envelope.data ?? JSONDecoder().decode(Payload.self, from: data)
        } catch {
            throw StreamEventError("not a JSON object of a market stream (\(Self.excerpt(text)))")
        }
        switch payload.e {
        case "kline":
            guard let wire = payload.k else { throw StreamEventError("a kline event without its candle (\"k\")") }
            let event = try Self.kline(wire, symbol: payload.s ?? wire.s, eventTime: payload.E ?? 0)
            if let stream, case .kline(let s, let interval, _, _, _) = event, stream != "\(s.lowercased())@kline_\(interval.rawValue)" {
                throw StreamEventError("stream \(stream) carried a kline of \(s) \(interval.rawValue)")
            }
            return (stream, event)
        case "aggTrade":
            let event = try Self.aggTrade(payload)
            if let stream, case .aggTrade(let s, _, _) = event, stream != "\(s.lowercased())@aggTrade" {
                throw StreamEventError("stream \(stream) carried a trade of \(s)")
            }
            return (stream, event)
        case "serverShutdown":
            return (stream, .serverShutdown(eventTime: payload.E ?? 0))
        default:
            return (stream, .ignored)
        }
    }

    static func excerpt(_ text: String) -> String {
        text.count > 80 ? String(text.prefix(80)) + "…" : text
    }

    static func decimal(_ text: String?, _ field: String) throws(StreamEventError) -> DecimalString {
        guard let text else { throw StreamEventError("field \"\(field)\" missing") }
        do { return try DecimalString(validating: text) } catch { throw StreamEventError("field \"\(field)\": \(error)") }
    }

    static func kline(_ k: KlineWire, symbol: String?, eventTime: Int64) throws(StreamEventError) -> StreamEvent {
        guard let interval = k.i.flatMap(KlineInterval.init(rawValue:)) else { throw StreamEventError("kline interval \(k.i ?? "missing")") }
        guard let symbol, !symbol.isEmpty else { throw StreamEventError("kline event without a symbol") }
        guard let open = k.t, let close = k.T, let count = k.n, let final = k.x else {
            throw StreamEventError("kline of \(symbol) lacks its open time, close time, trade count or \"x\"")
        }
        let kline = Kline(openTime: open, open: try decimal(k.o, "o"), high: try decimal(k.h, "h"), low: try decimal(k.l, "l"),
                          close: try decimal(k.c, "c"), volume: try decimal(k.v, "v"), closeTime: close, quoteAssetVolume: try decimal(k.q, "q"),
                          numberOfTrades: count, takerBuyBaseAssetVolume: try decimal(k.V, "V"), takerBuyQuoteAssetVolume: try decimal(k.Q, "Q"))
        do { try kline.validate(interval: interval) } catch {
            throw StreamEventError("kline of \(symbol) at \(UTCCalendar.iso8601(open)): \(error)")
        }
        return .kline(symbol: symbol, interval: interval, kline: kline, final: final, eventTime: eventTime)
    }

    static func aggTrade(_ p: Payload) throws(StreamEventError) -> StreamEvent {
        guard let symbol = p.s, let id = p.a, let first = p.f, let last = p.l, let time = p.T, let maker = p.m else {
            throw StreamEventError("aggregate trade lacks its symbol, id, trade ids, time or maker flag")
        }
        let trade = AggTrade(id: id, price: try decimal(p.p, "p"), quantity: try decimal(p.q, "q"), firstTradeId: first, lastTradeId: last,
                             time: time, isBuyerMaker: maker)
        guard first <= last, id >= 0 else { throw StreamEventError("aggregate trade \(id) of \(symbol): first trade id after last") }
        return .aggTrade(symbol: symbol, trade: trade, eventTime: p.E ?? 0)
    }

    /// A combined message: the stream's name and its payload.
    struct Envelope: Decodable {
        var stream: String?
        var data: Payload?
    }

    /// An event's payload, as documented ("Kline/Candlestick Streams", "Aggregate Trade Streams").
    struct Payload: Decodable {
        var e: String?
        var E: Int64?
        var s: String?
        var k: KlineWire?
        var a: Int64?
        var p: String?
        var q: String?
        var f: Int64?
        var l: Int64?
        var T: Int64?
        var m: Bool?
    }

    /// The candle of a kline event (`"k"`), as documented: t, T, s, i, f, L, o, c, h, l, v, n, x, q, V, Q, B.
    struct KlineWire: Decodable {
        var t: Int64?
        var T: Int64?
        var s: String?
        var i: String?
        var o: String?
        var c: String?
        var h: String?
        var l: String?
        var v: String?
        var n: Int64?
        var x: Bool?
        var q: String?
        var V: String?
        var Q: String?
    }
}
