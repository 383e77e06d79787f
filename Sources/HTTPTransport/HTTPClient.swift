/// An HTTP response with lower-cased header names.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A failure below HTTP: no status line arrived (connection refused or reset, timeout, TLS, truncated body).
public struct HTTPTransportError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case connect, timeout, tls, truncated, reset, tooLarge, other
    }
    public let kind: Kind
    public let detail: String
    public let url: String

    public init(kind: Kind, detail: String, url: String) {
        self.kind = kind
        self.detail = detail
        self.url = url
    }

    public var description: String { "HTTP request to \(url) failed (\(kind)): \(detail)" }

    /// Every transport failure may pass if tried again, except TLS errors (certificates do not fix themselves) and
    /// oversized bodies.
    public var isRetryable: Bool { kind != .tls && kind != .tooLarge }
}

/// What the Binance client needs from HTTP: a GET.
public protocol HTTPClient: Sendable {
    func get(_ url: String) async throws -> HTTPResponse
}
