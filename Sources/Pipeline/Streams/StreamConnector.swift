import HTTPTransport

/// Opens WebSocket connections to Binance's market streams. The pipeline sees only this protocol: the WebSocket
/// implementation (`BinanceStreams`, on SwiftNIO) is the one target that knows how frames travel, and tests feed
/// messages without a network.
public protocol StreamConnector: Sendable {
    /// Connects to `url` (`ws://` or `wss://`); returns once the upgrade succeeded. Throws `StreamConnectError` when the
    /// server refuses or cannot be reached.
    func connect(url: String) async throws -> any StreamConnection
}

/// One open connection: its text messages in order, until it ends. The sequence ends normally when the server closed
/// the connection with a close frame, and throws when it dropped.
public protocol StreamConnection: Sendable {
    var messages: AsyncThrowingStream<String, any Error> { get }
    /// Closes the connection (a close frame); the message sequence ends.
    func close() async
}

/// A connection that could not be opened, or ended without being asked to: what a follower reconnects after.
public struct StreamConnectError: Error, CustomStringConvertible {
    public let url: String
    public let reason: String
    public init(url: String, reason: String) {
        self.url = url
        self.reason = reason
    }
    /// Never shows credentials a URL carried.
    public var description: String { "stream connection to \(URLCredentials.redacted(url)): \(reason)" }
}
