import Clocks
import Foundation
import HTTPTransport
import Logging

/// Sends OTLP JSON bodies over HTTP, as the OTLP specification's "OTLP/HTTP" section says: `POST` with
/// `Content-Type: application/json`; on 429, 502, 503 and 504 retry, honouring `Retry-After`, with exponential
/// backoff; never retry other 4xx (the collector will not accept the same body later); log a `partialSuccess`.
/// Every attempt is bounded by the caller's deadline, so a collector that is down or slow costs at most that.
///
/// A refused connection is not a slow collector, and waiting out the deadline for it would stall every run
/// that has none: at an endpoint nobody configured (the specification's default, `http://localhost:4318`) the
/// exporter gives up at once and exports nothing more this run, saying so in one info line; at a configured one it
/// retries refusals for at most `refusalRetryMilliseconds` in a row, then makes one attempt per export until the
/// collector answers again.
public final class OTLPHTTPExporter: @unchecked Sendable {
    public struct Outcome: Sendable, Equatable {
        public var delivered: Bool
        public var attempts: Int
        /// The last status received, if any.
        public var status: Int?
        public var problem: String?
    }

    /// What the exporter has learnt about its endpoints during the run (guarded by `lock`).
    /// Traces and metrics go to one collector, so what one signal learns holds for the other.
    private struct EndpointState {
        /// Nothing listens at the default endpoints: no more attempts there this run.
        var defaultAbsent = false
        /// When the current run of refused connections began (cleared by any answer).
        var refusingSince: Int64?
    }

    private let http: any HTTPClient
    private let headers: [(String, String)]
    private let requestTimeoutMilliseconds: Int
    private let clock: any WallClock
    private let logger: Logger
    private let defaultEndpoints: Set<String>
    private let refusalRetryMilliseconds: Int64
    private let lock = NSLock()
    private var state = EndpointState()

    /// `defaultEndpoints`: the URLs nobody configured (`TelemetryConfiguration.defaultEndpoints`).
    public init(http: any HTTPClient, headers: [(String, String)], requestTimeoutMilliseconds: Int, clock: any WallClock,
                logger: Logger, defaultEndpoints: Set<String> = [], refusalRetryMilliseconds: Int64 = 1_000) {
        self.defaultEndpoints = defaultEndpoints
        self.refusalRetryMilliseconds = refusalRetryMilliseconds
        self.http = http
        self.headers = headers
        self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        self.clock = clock
        self.logger = logger
    }

    static let retryableStatuses: Set<Int> = [429, 502, 503, 504]

    /// True once a default endpoint refused a connection: nothing is exported this run, and that is no loss worth a
    /// warning (nobody asked for export).
    public var defaultEndpointAbsent: Bool { lock.withLock { state.defaultAbsent } }

    public func export(_ body: [UInt8], to url: String, deadline: Int64) async -> Outcome {
        var outcome = Outcome(delivered: false, attempts: 0, status: nil, problem: nil)
        if defaultEndpoints.contains(url), lock.withLock({ state.defaultAbsent }) {
            outcome.problem = "no collector at the default endpoint"
            return outcome
        }
        var backoff: Int64 = 500
        var refusalBackoff: Int64 = 100
        while true {
            let remaining = deadline - clock.now()
            guard remaining > 0 else {
                outcome.problem = outcome.problem ?? "deadline passed"
                return outcome
            }
            outcome.attempts += 1
            let request = HTTPRequest(method: .post, url: url, headers: [("Content-Type", "application/json")] + headers,
                                      body: body, timeoutMilliseconds: Int(min(Int64(requestTimeoutMilliseconds), remaining)))
            var wait: Int64
            do {
                let response = try await http.send(request)
                outcome.status = response.status
                lock.withLock { state.refusingSince = nil }
                if (200..<300).contains(response.status) {
                    reportPartialSuccess(response.body, url: url)
                    outcome.delivered = true
                    outcome.problem = nil
                    return outcome
                }
                let text = String(decoding: response.body.prefix(200), as: UTF8.self)
                outcome.problem = "HTTP \(response.status) \(text)"
                guard Self.retryableStatuses.contains(response.status) else {
                    logger.warning("collector refused telemetry; not retrying", metadata: [
                        "endpoint": "\(TelemetryConfiguration.redacted(url))", "status": "\(response.status)", "body": "\(text)",
                    ])
                    return outcome
                }
                wait = response.headers["retry-after"].flatMap { Int64($0.trimmingCharacters(in: .whitespaces)) }.map { $0 * 1000 } ?? backoff
            } catch is CancellationError {
                outcome.problem = "cancelled"
                return outcome
            } catch let error as HTTPTransportError where error.kind == .connect {
                outcome.problem = "\(error)"
                guard let retryIn = refused(url, backoff: refusalBackoff) else { return outcome }
                wait = retryIn
                refusalBackoff *= 2
            } catch {
                outcome.problem = "\(error)"
                wait = backoff
            }
            backoff = min(backoff * 2, 30_000)
            if clock.now() + wait >= deadline {
                outcome.problem = (outcome.problem ?? "") + " (no time left to retry)"
                return outcome
            }
            do { try await clock.sleep(until: clock.now() + wait) } catch {
                outcome.problem = "cancelled"
                return outcome
            }
        }
    }

    /// A connection to `url` was refused (or its host does not resolve): how long to wait before trying again, or nil
    /// to give up on this export.
    private func refused(_ url: String, backoff: Int64) -> Int64? {
        let now = clock.now()
        if defaultEndpoints.contains(url) {
            let first = lock.withLock {
                defer { state.defaultAbsent = true }
                return !state.defaultAbsent
            }
            if first {
                logger.info("""
                    no OTLP collector at the default endpoint; telemetry is not exported this run \
                    (set OTEL_EXPORTER_OTLP_ENDPOINT to export, or OTEL_SDK_DISABLED=true to skip this check)
                    """,
                    metadata: ["endpoint": "\(TelemetryConfiguration.redacted(url))"])
            }
            return nil
        }
        let since = lock.withLock {
            if let since = state.refusingSince { return since }
            state.refusingSince = now
            return now
        }
        return now + backoff <= since + refusalRetryMilliseconds ? backoff : nil
    }

    /// OTLP/HTTP: a 200 may carry `partialSuccess` with rejected items and an error message.
    private func reportPartialSuccess(_ body: [UInt8], url: String) {
        guard !body.isEmpty,
              let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let partial = json["partialSuccess"] as? [String: Any] else { return }
        let rejected = partial["rejectedSpans"] ?? partial["rejectedDataPoints"] ?? 0
        let message = partial["errorMessage"] as? String ?? ""
        if "\(rejected)" != "0" || !message.isEmpty {
            logger.warning("collector accepted telemetry only in part", metadata: [
                "endpoint": "\(TelemetryConfiguration.redacted(url))", "rejected": "\(rejected)", "error": "\(message)",
            ])
        }
    }
}
