import Foundation
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

    /// `url` is kept with its credentials redacted: the error reaches logs and spans.
    public init(kind: Kind, detail: String, url: String) {
        self.kind = kind
        self.detail = detail
        self.url = URLCredentials.redacted(url)
    }

    public var description: String { "HTTP request to \(url) failed (\(kind)): \(detail)" }

    /// Every transport failure may pass if tried again, except TLS errors (certificates do not fix themselves) and
    /// oversized bodies.
    public var isRetryable: Bool { kind != .tls && kind != .tooLarge }
}

/// An HTTP request: GET or HEAD without a body, or POST with one.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable { case get = "GET", head = "HEAD", post = "POST" }
    public var method: Method
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// Overrides the client's total timeout for this request (ms).
    public var timeoutMilliseconds: Int?

    public init(method: Method = .get, url: String, headers: [(String, String)] = [], body: [UInt8] = [],
                timeoutMilliseconds: Int? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// HTTP as the project uses it: the Binance client GETs, the OTLP exporter POSTs.
public protocol HTTPClient: Sendable {
    func send(_ request: HTTPRequest) async throws -> HTTPResponse
    /// Sends `request` and writes the answer's body into the file at `path` (created, or emptied) instead of memory;
    /// returns the status and headers, with an empty body.
    func download(_ request: HTTPRequest, to path: String) async throws -> HTTPResponse
}

extension HTTPClient {
    /// A client without a streaming download of its own writes the body it received.
    public func download(_ request: HTTPRequest, to path: String) async throws -> HTTPResponse {
        var response = try await send(request)
        guard FileManager.default.createFile(atPath: path, contents: Data(response.body)) else {
            throw HTTPTransportError(kind: .other, detail: "cannot write \(path)", url: request.url)
        }
        response.body = []
        return response
    }

    public func get(_ url: String) async throws -> HTTPResponse {
        try await send(HTTPRequest(url: url))
    }
}
