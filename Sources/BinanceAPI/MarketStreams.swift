import Foundation

/// Binance's WebSocket market streams: what a connection may carry, and the stream names (developers.binance.com,
/// spot "WebSocket Streams", USD-M and COIN-M "Websocket Market Streams").
///
/// - "All symbols for streams are lowercase"; kline streams are `<symbol>@kline_<interval>`, aggregate trades
///   `<symbol>@aggTrade`.
/// - Combined streams are at `/stream?streams=<name1>/<name2>` and wrapped as `{"stream":"<name>","data":<payload>}`.
/// - "A single connection to stream.binance.com is only valid for 24 hours; expect to be disconnected at the 24 hour mark."
public enum MarketStream: Sendable, Hashable, CustomStringConvertible {
    case kline(Symbol, KlineInterval)
    case aggTrade(Symbol)

    /// The stream's name as Binance spells it (lowercase symbol).
    public var name: String {
        switch self {
        case .kline(let symbol, let interval): "\(symbol.name.lowercased())@kline_\(interval.rawValue)"
        case .aggTrade(let symbol): "\(symbol.name.lowercased())@aggTrade"
        }
    }

    public var description: String { name }

    public var symbol: Symbol {
        switch self {
        case .kline(let symbol, _), .aggTrade(let symbol): symbol
        }
    }

    /// The stream's WebSocket URL for a connection carrying `streams` (combined), under `base` (which may carry a path
    /// prefix, such as USD-M's routed `/market`).
    public static func url(base: String, streams: [MarketStream]) -> String {
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        return trimmed + "/stream?streams=" + streams.map(\.name).joined(separator: "/")
    }
}

extension Market {
    /// The WebSocket base URL Binance documents for this market's market-data streams.
    ///
    /// - Spot: `wss://stream.binance.com:9443` ("The base endpoint is: wss://stream.binance.com:9443 or
    ///   wss://stream.binance.com:443").
    /// - USD-M: `wss://fstream.binance.com/market`: since the "Important WebSocket Change Notice" (legacy URLs retired
    ///   2026-04-23), regular market data (klines, aggregate trades) is routed under `/market`; "Connections that do
    ///   not include a routed path ... will only receive data from the Public endpoint".
    /// - COIN-M: `wss://dstream.binance.com`.
    public var defaultStreamBaseURL: String {
        switch self {
        case .spot: "wss://stream.binance.com:9443"
        case .futures: "wss://fstream.binance.com/market"
        case .coinm: "wss://dstream.binance.com"
        }
    }

    /// The environment variable naming this market's WebSocket base URL.
    public var streamURLVariable: String {
        switch self {
        case .spot: "BINANCE_WS_URL"
        case .futures: "BINANCE_FUTURES_WS_URL"
        case .coinm: "BINANCE_COINM_WS_URL"
        }
    }

    /// Streams one connection may carry. Spot: "A single connection can listen to a maximum of 1024 streams." USD-M and
    /// COIN-M pages have said 200 as well as 1024: the smaller is kept (more connections cost nothing but attempts).
    public var maxStreamsPerConnection: Int { self == .spot ? 1024 : 200 }

    /// Incoming messages a connection may send a second (pings, pongs and JSON control messages): spot 5, futures 10.
    /// "A connection that goes beyond the limit will be disconnected; IPs that are repeatedly disconnected may be banned."
    public var maxIncomingMessagesPerSecond: Int { self == .spot ? 5 : 10 }

    /// How often the server pings, and how long it waits for the pong before it drops the connection (ms): spot pings
    /// every 20 s and waits a minute; futures ping every 3 minutes and wait 10.
    public var streamPing: (every: Int64, pongWithin: Int64) {
        self == .spot ? (20_000, 60_000) : (180_000, 600_000)
    }

    /// How often a kline stream pushes an update (ms): spot every 2 s (1 s for `1s`), futures every 250 ms.
    public func klineUpdateMilliseconds(_ interval: KlineInterval) -> Int64 {
        switch self {
        case .spot: interval == .s1 ? 1_000 : 2_000
        case .futures, .coinm: 250
        }
    }
}

/// "300 connections per attempt every 5 minutes per IP": at most this many connection attempts in any 5 minutes.
public enum StreamConnectionLimits {
    public static let attemptsPerWindow = 300
    public static let windowMilliseconds: Int64 = 300_000
    /// "A single connection ... is only valid for 24 hours."
    public static let connectionLifetimeMilliseconds: Int64 = 86_400_000
}
