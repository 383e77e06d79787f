import FlyingFox
import FlyingSocks
import Foundation

/// `follow`'s probes on a small HTTP port, for Kubernetes (and anyone's curl):
/// - `GET /healthz`: 200 while the process serves (liveness: a process that cannot answer is restarted);
/// - `GET /readyz`: 200 when `readiness` says ready, else 503; the body (JSON) says which units are behind.
/// Nothing else is served (404); bodies are a few hundred bytes whatever is asked.
public final class HealthServer: Sendable {
    /// Ready or not, and the JSON body that says why.
    public typealias Readiness = @Sendable () -> (ready: Bool, body: String)

    private let server: HTTPServer
    private let readiness: Readiness

    /// `host`: the address to listen on (0.0.0.0 in a pod, so the kubelet reaches it).
    public init(host: String, port: UInt16, readiness: @escaping Readiness) throws {
        server = HTTPServer(address: try sockaddr_in.inet(ip4: host, port: port), timeout: 10, logger: .disabled)
        self.readiness = readiness
    }

    /// Listens until the task is cancelled. Throws when the port cannot be had (in use, not allowed).
    public func run() async throws {
        let readiness = readiness
        await server.appendRoute("GET /healthz") { _ in
            HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"], body: Data("{\"status\":\"ok\"}".utf8))
        }
        await server.appendRoute("GET /readyz") { _ in
            let (ready, body) = readiness()
            return HTTPResponse(statusCode: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"], body: Data(body.utf8))
        }
        await server.appendRoute("*") { _ in HTTPResponse(statusCode: .notFound) }
        try await withTaskCancellationHandler {
            try await server.run()
        } onCancel: { [server] in
            Task { await server.stop(timeout: 0) }
        }
    }

    /// Waits (up to `timeout` seconds) until the server listens; returns its port (the one asked, or the system's pick
    /// for 0).
    public func listening(timeout: Double = 60) async throws -> UInt16 {
        try await server.waitUntilListening(timeout: timeout)
        if case .ip4(_, let port)? = await server.listeningAddress { return port }
        return 0
    }
}

extension HealthServer {
    /// Whether `host:port` can be listened on now (a bad address, a port in use or not allowed says so), so `follow`
    /// refuses it before it connects anywhere.
    public static func checkAvailable(host: String, port: UInt16) throws(HealthPortError) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw HealthPortError("'\(host)' is not an IPv4 address") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HealthPortError("no socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw HealthPortError("cannot listen on \(host):\(port): \(String(cString: strerror(errno)))") }
    }
}

/// The health port cannot be had.
public struct HealthPortError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
