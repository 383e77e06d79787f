import Foundation
import Logging
import Pipeline
import WSClient

/// Binance's market streams over hummingbird-project's swift-websocket (SwiftNIO; TLS through NIOSSL for `wss://`).
///
/// The client answers every ping with a pong carrying its payload (RFC 6455 §5.5.3, as Binance requires: "If the
/// WebSocket server does not receive a pong frame back from the connection within a minute the connection will be
/// disconnected"), and sends no pings of its own: Binance counts pings and pongs against a connection's incoming
/// message limit, and its own pings keep the connection alive.
public struct WebSocketConnector: StreamConnector {
    /// A message larger than this ends the connection (a kline event is under 400 bytes; Binance sends no large ones).
    public static let maxMessageBytes = 64 * 1024
    let logger: Logger
    /// A connect (TCP, TLS and the upgrade) that has not succeeded by then fails, and the hub backs off and tries again:
    /// a server that accepts and never answers must not hold the streams forever.
    let connectTimeoutSeconds: Double

    public init(logger: Logger, connectTimeoutSeconds: Double = 10) {
        self.logger = logger
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    public func connect(url: String) async throws -> any StreamConnection {
        let connection = WebSocketStreamConnection()
        try await connection.start(url: url, logger: logger, timeoutSeconds: connectTimeoutSeconds)
        return connection
    }
}

/// One connection: a task runs the client, whose handler hands each text message to `messages`.
final class WebSocketStreamConnection: StreamConnection, @unchecked Sendable {
    let messages: AsyncThrowingStream<String, any Error>
    private let continuation: AsyncThrowingStream<String, any Error>.Continuation
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var closing = false
    private var writer: WriterBox?

    init() {
        // Bounded (10,000 messages of a few hundred bytes: a few MiB): a reader that falls far behind loses the oldest
        // messages, not memory; a lost final event is noticed by the follower when the next candle starts, and fetched
        // from REST.
        (messages, continuation) = AsyncThrowingStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(10_000))
    }

    /// Connects; returns once the upgrade succeeded (the first callback of the handler), or throws why it failed.
    func start(url: String, logger: Logger, timeoutSeconds: Double) async throws {
        let upgraded = AsyncThrowingStream<Void, any Error>.makeStream()
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = WebSocketConnector.maxMessageBytes
        configuration.autoPing = .disabled
        configuration.closeTimeout = .seconds(2)
        let continuation = continuation
        let writerBox = WriterBox()
        let task = Task { [weak self, writerBox] in
            do {
                let closeFrame = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                    writerBox.set(outbound)
                    upgraded.continuation.yield()
                    upgraded.continuation.finish()
                    for try await message in inbound.messages(maxSize: WebSocketConnector.maxMessageBytes) {
                        if case .text(let text) = message { continuation.yield(text) }
                    }
                }
                upgraded.continuation.finish(throwing: StreamConnectError(url: url, reason: "the server refused the WebSocket upgrade"))
                if self?.isClosing == true || closeFrame != nil {
                    continuation.finish()
                } else {
                    continuation.finish(throwing: StreamConnectError(url: url, reason: "the connection dropped without a close frame"))
                }
            } catch {
                let reason = Task.isCancelled ? "closed" : "\(error)"
                upgraded.continuation.finish(throwing: StreamConnectError(url: url, reason: reason))
                if self?.isClosing == true || Task.isCancelled {
                    continuation.finish()
                } else {
                    continuation.finish(throwing: StreamConnectError(url: url, reason: "the connection failed: \(error)"))
                }
            }
        }
        lock.withLock {
            self.task = task
            self.writer = writerBox
        }
        let deadline = Task {
            try await Task.sleep(nanoseconds: UInt64(timeoutSeconds * 1e9))
            upgraded.continuation.finish(throwing: StreamConnectError(url: url, reason: "no WebSocket upgrade within \(timeoutSeconds) s"))
        }
        defer { deadline.cancel() }
        var iterator = upgraded.stream.makeAsyncIterator()
        do {
            guard try await iterator.next() != nil else {
                throw StreamConnectError(url: url, reason: "the connection ended before the upgrade")
            }
        } catch {
            task.cancel()
            throw error
        }
    }

    private var isClosing: Bool { lock.withLock { closing } }

    /// Sends a close frame (the client then ends once the server answers, or after its close timeout) and ends the
    /// messages at once; nothing waits on a server that stopped answering.
    func close() async {
        let (task, writer): (Task<Void, Never>?, WebSocketOutboundWriter?) = lock.withLock {
            closing = true
            return (self.task, self.writer?.get())
        }
        continuation.finish()
        if let writer {
            try? await writer.close(.normalClosure, reason: nil)
        } else {
            task?.cancel()
        }
    }
}

/// The connection's outbound writer, once the upgrade gave it.
final class WriterBox: @unchecked Sendable {
    private let lock = NSLock()
    private var writer: WebSocketOutboundWriter?
    func set(_ w: WebSocketOutboundWriter) { lock.withLock { writer = w } }
    func get() -> WebSocketOutboundWriter? { lock.withLock { writer } }
}
