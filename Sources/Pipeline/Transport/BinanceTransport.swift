import BinanceAPI
import Clocks
import Foundation
import HTTPTransport
import Logging
import Telemetry
import Tracing

/// How every request to one market of Binance is sent, whatever the endpoint: the weight spent through the
/// `RateLimiter` (and an endpoint's own request limit), the `CircuitBreaker`, one CLIENT span and the request metrics
/// per attempt, the answer classified, and transient failures retried with backoff and jitter, so a unit does not
/// restart for one lost page. Knows nothing of what the endpoints answer.
public final class BinanceTransport: Sendable {
    public let market: Market
    public let baseURL: String
    public let limiter: RateLimiter
    public let breaker: CircuitBreaker
    private let http: any HTTPClient
    private let clock: any WallClock
    private let backoff: Backoff
    private let maxAttempts: Int
    private let logger: Logger
    private let stats = RequestStats()
    private let serverAddress: String
    private let serverPort: Int

    public init(market: Market, baseURL: String, http: any HTTPClient, limiter: RateLimiter, clock: any WallClock,
                breaker: CircuitBreaker? = nil, backoff: Backoff = Backoff(), maxAttempts: Int = 5,
                logger: Logger = Logger(label: "binance")) {
        self.breaker = breaker ?? CircuitBreaker(clock: clock)
        self.market = market
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.http = http
        self.limiter = limiter
        self.clock = clock
        self.backoff = backoff
        self.maxAttempts = max(1, maxAttempts)
        self.logger = logger
        serverAddress = URLParts.host(self.baseURL) ?? ""
        serverPort = URLParts.port(self.baseURL) ?? 443
    }

    /// Requests sent, retries, and answers by status, for the summary.
    public var requestStats: RequestStats.Snapshot { stats.snapshot }

    /// Sends one GET, retrying what may pass later. Rate limits hold every task through the limiter and do not
    /// count as attempts; a ban longer than the caller can wait surfaces as `BinanceError.banned`.
    func send(path: String, weight: Int, extraLimiter: RateLimiter? = nil) async throws -> [UInt8] {
        let url = baseURL + path
        let endpoint = String(path.prefix { $0 != "?" })
        var attempt = 0
        while true {
            // An exchange that keeps failing gets one probe at a time, not every unit's retries.
            try await breaker.permit()
            if let extraLimiter { _ = try await extraLimiter.acquire(weight: 1) }
            let window = try await limiter.acquire(weight: weight)
            stats.sent()
            let started = clock.now()
            // One CLIENT span per attempt (OpenTelemetry semantic conventions for HTTP client spans).
            // The answer, its status for metrics, and its weight headers (read once, for the span and the limiter).
            let (outcome, status, headers) = await withSpan("GET \(endpoint)", ofKind: .client) { span in
                span.attributes["http.request.method"] = "GET"
                span.attributes["url.full"] = URLCredentials.redacted(url)
                span.attributes["server.address"] = serverAddress
                span.attributes["server.port"] = Int64(serverPort)
                span.attributes["binance.request.weight"] = Int64(weight)
                if attempt > 0 { span.attributes["http.request.resend_count"] = Int64(attempt) }
                let outcome: Result<HTTPResponse, any Error>
                do { outcome = .success(try await http.get(url)) } catch { outcome = .failure(error) }
                switch outcome {
                case .success(let response):
                    span.attributes["http.response.status_code"] = Int64(response.status)
                    let headers = WeightHeaders(headers: response.headers)
                    if let used = headers.usedWeight.values.max() {
                        span.attributes["binance.used_weight"] = Int64(used)
                    }
                    if response.status >= 400 {
                        span.attributes["error.type"] = "\(response.status)"
                        span.setStatus(SpanStatus(code: .error, message: "HTTP \(response.status)"))
                    }
                    return (outcome, "\(response.status)", headers)
                case .failure(let error):
                    let type = (error as? HTTPTransportError).map { "\($0.kind)" } ?? "\(type(of: error))"
                    span.attributes["error.type"] = type
                    span.recordError(error)
                    return (outcome, type, WeightHeaders())
                }
            }
            let metrics = RunMetrics.current
            metrics?.record("http.client.request.duration", seconds: Double(clock.now() - started) / 1000,
                            description: "Duration of HTTP requests to Binance.",
                            attributes: ["http.request.method": "GET", "server.address": serverAddress, "http.response.status_code": status])
            metrics?.add("binance_extractor.requests", 1, unit: "{request}", description: "Requests to Binance, by answer.",
                         attributes: ["market": market.rawValue, "status": status])
            metrics?.add("binance_extractor.request_weight", Double(weight), unit: "{weight}",
                         description: "Request weight spent.", attributes: ["market": market.rawValue])
            // The breaker counts the exchange's own failures: 5xx, timeouts, resets, unreadable bodies. Request
            // issues (4xx) and rate limits say nothing about whether Binance is up.
            switch outcome {
            case .success(let response):
                let down = response.status >= 500 || response.status == 408 || (response.status == 200 && response.body.isEmpty)
                await breaker.record(success: !down, error: down ? "HTTP \(response.status)" : nil)
            case .failure(let failure):
                if !(failure is CancellationError) { await breaker.record(success: false, error: "\(failure)") }
            }
            let error: any Error
            switch outcome {
            case .success(let response):
                stats.answered(status: response.status)
                let mayWait = await limiter.record(headers: headers, status: response.status, grantedIn: window)
                if response.status == 200 { return response.body }
                error = Self.classify(response)
                if response.status == 429 || (response.status == 418 && mayWait) {
                    // The limiter now holds every task until Retry-After; go again without counting an attempt.
                    logger.warning(response.status == 429 ? "rate limited by Binance; holding all requests"
                                                          : "banned by Binance for a short while; holding all requests", metadata: [
                        "status": "\(response.status)", "retry_after_s": "\(headers.retryAfterSeconds ?? -1)", "url": "\(url)",
                    ])
                    continue
                }
                if response.status == 418, let until = await limiter.bannedUntil {
                    throw BinanceError.banned(retryAfterSeconds: headers.retryAfterSeconds, until: until)
                }
            case .failure(let failure):
                if failure is CancellationError { throw failure }
                error = failure
            }
            attempt += 1
            let retryable = (error as? BinanceError)?.isRetryable ?? (error as? HTTPTransportError)?.isRetryable ?? false
            if case BinanceError.banned = error { throw error }
            guard retryable, attempt < maxAttempts else { throw error }
            stats.retried()
            metrics?.add("binance_extractor.retries", 1, unit: "{retry}", description: "Requests sent again after a transient failure.",
                         attributes: ["market": market.rawValue])
            let delay = backoff.delay(attempt: attempt - 1, unitRandom: Double.random(in: 0..<1))
            logger.info("retrying Binance request", metadata: [
                "attempt": "\(attempt)", "delay_ms": "\(delay)", "error": "\(error)", "url": "\(url)",
            ])
            try await clock.sleep(until: clock.now() + delay)
        }
    }

    /// Turns a non-200 answer into a `BinanceError`.
    static func classify(_ response: HTTPResponse) -> BinanceError {
        let retryAfter = response.headers["retry-after"].flatMap { Int($0) }
        switch response.status {
        case 429: return .rateLimited(retryAfterSeconds: retryAfter)
        case 418: return .banned(retryAfterSeconds: retryAfter)
        default: break
        }
        if let payload = try? JSONDecoder().decode(BinanceErrorPayload.self, from: Data(response.body)) {
            return .api(status: response.status, payload: payload)
        }
        let prefix = String(decoding: response.body.prefix(120), as: UTF8.self)
            .replacingOccurrences(of: "\n", with: " ")
        return .unexpectedStatus(status: response.status, bodyPrefix: prefix)
    }
}
