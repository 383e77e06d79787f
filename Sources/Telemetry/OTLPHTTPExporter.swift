import Clocks
import Foundation
import HTTPTransport
import Logging

/// Sends OTLP JSON bodies over HTTP, as the OTLP specification's "OTLP/HTTP" section says: `POST` with
/// `Content-Type: application/json`; on 429, 502, 503 and 504 retry, honouring `Retry-After`, with exponential
/// backoff; never retry other 4xx (the collector will not accept the same body later); log a `partialSuccess`.
/// Every attempt is bounded by the caller's deadline, so a collector that is down or slow costs at most that.
public final class OTLPHTTPExporter: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var delivered: Bool
        public var attempts: Int
        /// The last status received, if any.
        public var status: Int?
        public var problem: String?
    }

    private let http: any HTTPClient
    private let headers: [(String, String)]
    private let requestTimeoutMilliseconds: Int
    private let clock: any WallClock
    private let logger: Logger

    public init(http: any HTTPClient, headers: [(String, String)], requestTimeoutMilliseconds: Int, clock: any WallClock,
                logger: Logger) {
        self.http = http
        self.headers = headers
        self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        self.clock = clock
        self.logger = logger
    }

    static let retryableStatuses: Set<Int> = [429, 502, 503, 504]

    public func export(_ body: [UInt8], to url: String, deadline: Int64) async -> Outcome {
        var outcome = Outcome(delivered: false, attempts: 0, status: nil, problem: nil)
        var backoff: Int64 = 500
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
