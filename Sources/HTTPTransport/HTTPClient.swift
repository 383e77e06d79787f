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
        /// `noSpace`: a download's announced length does not fit on the disk its file is on.
        case connect, timeout, tls, truncated, reset, tooLarge, noSpace, other
    }
    public let kind: Kind
    public let detail: String
    public let url: String
    /// The status and headers of an answer cut off mid-body (its body empty), when they had arrived: a download can be
    /// resumed from them (`ETag`, `Accept-Ranges`).
    public var partial: HTTPResponse?

    /// `url` is kept with its credentials redacted: the error reaches logs and spans.
    public init(kind: Kind, detail: String, url: String, partial: HTTPResponse? = nil) {
        self.kind = kind
        self.detail = detail
        self.url = URLCredentials.redacted(url)
        self.partial = partial
    }

    public var description: String { "HTTP request to \(url) failed (\(kind)): \(detail)" }

    /// Every transport failure may pass if tried again, except TLS errors (certificates do not fix themselves),
    /// oversized bodies and a full disk.
    public var isRetryable: Bool { kind != .tls && kind != .tooLarge && kind != .noSpace }
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
    /// Sends `request` and writes the answer's body into the file at `path` instead of memory; returns the status and
    /// headers, with an empty body. A 206 answer is written from byte `offset` on (the caller asked `Range:
    /// bytes=OFFSET-`, and the file holds the bytes before it); any other answer replaces the file's contents.
    /// `observer` sees the body as it is written (a digest computed while the bytes arrive).
    func download(_ request: HTTPRequest, to path: String, from offset: Int, observer: (any DownloadObserver)?) async throws -> HTTPResponse
}

/// Sees a download's body as it is written to its file, in order, on the transfer's thread.
public protocol DownloadObserver: AnyObject, Sendable {
    /// The body begins at `offset` of the file (0, or a resumed download's first byte): what came before is not seen.
    func started(at offset: Int)
    func received(_ bytes: UnsafeRawBufferPointer)
}

extension HTTPClient {
    /// A client without a streaming download of its own writes the body it received.
    public func download(_ request: HTTPRequest, to path: String, from offset: Int, observer: (any DownloadObserver)?) async throws -> HTTPResponse {
        var response = try await send(request)
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HTTPTransportError(kind: .other, detail: "cannot write \(path)", url: request.url) }
        defer { close(fd) }
        let start = response.status == 206 ? offset : 0
        let written = response.body.withUnsafeBytes { ftruncate(fd, off_t(start)) == 0 ? pwrite(fd, $0.baseAddress, $0.count, off_t(start)) : -1 }
        guard written == response.body.count else { throw HTTPTransportError(kind: .other, detail: "cannot write \(path)", url: request.url) }
        observer?.started(at: start)
        response.body.withUnsafeBytes { observer?.received($0) }
        response.body = []
        return response
    }

    /// The whole body into the file at `path`.
    public func download(_ request: HTTPRequest, to path: String) async throws -> HTTPResponse {
        try await download(request, to: path, from: 0, observer: nil)
    }

    public func get(_ url: String) async throws -> HTTPResponse {
        try await send(HTTPRequest(url: url))
    }
}
