import FlyingFox
import FlyingSocks
import Foundation

/// A small OTLP/HTTP receiver on loopback: accepts `POST /v1/traces` and `POST /v1/metrics`, keeps every body
/// (and writes it to a folder if asked), and can be told to answer badly, so tests and the demo see exactly what
/// the exporter sent.
public actor OTLPReceiver {
    /// One request as received.
    public struct Received: Sendable {
        public let path: String
        public let headers: [String: String]
        public let body: Data
        /// The status the receiver answered.
        public let status: Int
    }

    /// How to answer the next request.
    public enum Answer: Sendable {
        case accept
        case status(Int, retryAfterSeconds: Int?)
        /// Never answer (until the client gives up).
        case hang
        /// 200 with a `partialSuccess` naming rejected spans.
        case partialSuccess(rejected: Int)
    }

    private var received: [Received] = []
    private var script: [Answer] = []
    private var defaultAnswer: Answer = .accept
    private let directory: URL?
    private var server: HTTPServer?
    private var task: Task<Void, any Error>?
    public private(set) var port: UInt16 = 0

    public init(directory: URL? = nil) {
        self.directory = directory
    }

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    @discardableResult
    public func start(port requested: UInt16 = 0) async throws -> UInt16 {
        if let directory { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        let server = HTTPServer(address: try sockaddr_in.inet(ip4: "127.0.0.1", port: requested), timeout: 3600, logger: .disabled)
        await server.appendRoute("*") { [self] request in await self.handle(request) }
        self.server = server
        task = Task { try await server.run() }
        try await server.waitUntilListening()
        if case .ip4(_, let bound)? = await server.listeningAddress { port = bound }
        return port
    }

    public func run() async throws { try await task?.value }

    public func stop() async {
        await server?.stop(timeout: 0)
        task?.cancel()
    }

    /// Answers the next requests in this order, then `then` for all others.
    public func script(_ answers: [Answer], then: Answer = .accept) {
        script = answers
        defaultAnswer = then
    }

    public var requests: [Received] { received }

    /// Bodies accepted (2xx) at a path.
    public func bodies(path: String) -> [Data] {
        received.filter { $0.path == path && (200..<300).contains($0.status) }.map(\.body)
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let body = (try? await request.bodyData) ?? Data()
        let answer = script.isEmpty ? defaultAnswer : script.removeFirst()
        var headers: [String: String] = [:]
        for (name, values) in zip(request.headers.keys, request.headers.values) { headers[name.rawValue.lowercased()] = values.joined(separator: ",") }
        let status: Int
        var response: HTTPResponse
        switch answer {
        case .hang:
            try? await Task.sleep(nanoseconds: 3_600_000_000_000)
            return HTTPResponse(statusCode: .serviceUnavailable)
        case .accept:
            status = request.method == .POST ? 200 : 405
            response = HTTPResponse(statusCode: HTTPStatusCode(status, phrase: status == 200 ? "OK" : "Method Not Allowed"),
                                    headers: [.contentType: "application/json"], body: Data("{}".utf8))
        case .partialSuccess(let rejected):
            status = 200
            response = HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"],
                                    body: Data("{\"partialSuccess\":{\"rejectedSpans\":\"\(rejected)\",\"errorMessage\":\"span too large\"}}".utf8))
        case .status(let code, let retryAfter):
            status = code
            response = HTTPResponse(statusCode: HTTPStatusCode(code, phrase: "Status"), headers: [.contentType: "application/json"],
                                    body: Data("{\"code\":14,\"message\":\"unavailable\"}".utf8))
            if let retryAfter { response.headers[HTTPHeader("Retry-After")] = "\(retryAfter)" }
        }
        received.append(Received(path: request.path, headers: headers, body: body, status: status))
        if (200..<300).contains(status), let directory {
            let kind = request.path.hasSuffix("metrics") ? "metrics" : "traces"
            let file = directory.appendingPathComponent(String(format: "%@-%05d.json", kind, received.count))
            try? body.write(to: file)
        }
        return response
    }
}
