import Clocks
import Foundation
import HTTPTransport
import Logging
import Telemetry
import Testing
import Tracing

/// An HTTP client that answers from a script and records what it was sent.
final class ScriptedHTTP: HTTPClient, @unchecked Sendable {
    let lock = NSLock()
    var answers: [Result<HTTPResponse, any Error>]
    var sent: [HTTPRequest] = []
    init(_ answers: [Result<HTTPResponse, any Error>]) { self.answers = answers }
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let answer: Result<HTTPResponse, any Error> = lock.withLock {
            sent.append(request)
            return answers.isEmpty ? .success(HTTPResponse(status: 200, headers: [:], body: [])) : answers.removeFirst()
        }
        return try answer.get()
    }
}

func response(_ status: Int, retryAfter: String? = nil) -> Result<HTTPResponse, any Error> {
    .success(HTTPResponse(status: status, headers: retryAfter.map { ["retry-after": $0] } ?? [:], body: []))
}

@Suite("OTLP encoding, configuration and export policy", .timeLimit(.minutes(2)))
struct TelemetryUnitTests {
    let logger = Logger(label: "test")

    @Test("spans encode as OTLP JSON: hex ids, integer enums, 64-bit integers as strings")
    func encoding() throws {
        let context = OTelSpanContext(traceID: try #require(TraceID(hex: "0af7651916cd43dd8448eb211c80319c")),
                                      spanID: try #require(SpanID(hex: "b7ad6b7169203331")),
                                      parentSpanID: SpanID(hex: "00f067aa0ba902b7"))
        var attributes: SpanAttributes = [:]
        attributes["http.response.status_code"] = 200
        attributes["url.full"] = "https://fapi.binance.com/fapi/v1/klines?symbol=BTCUSDT"
        attributes["ok"] = true
        let span = FinishedSpan(context: context, name: "GET /fapi/v1/klines", kind: .client, startNanoseconds: 1_700_000_000_000_000_000,
                                endNanoseconds: 1_700_000_000_500_000_000, attributes: attributes,
                                events: [SpanEvent(name: "exception", at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: 5), attributes: ["exception.type": "X"])],
                                status: SpanStatus(code: .error, message: "boom"))
        let json = OTLPJSON.traces([span], resource: [("service.name", "binance-extractor")], scopeVersion: "1")
        #expect(json.contains("\"traceId\":\"0af7651916cd43dd8448eb211c80319c\""))
        #expect(json.contains("\"spanId\":\"b7ad6b7169203331\""))
        #expect(json.contains("\"parentSpanId\":\"00f067aa0ba902b7\""))
        #expect(json.contains("\"kind\":3"))
        #expect(json.contains("\"startTimeUnixNano\":\"1700000000000000000\""))
        #expect(json.contains("{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"200\"}}"))
        #expect(json.contains("{\"key\":\"ok\",\"value\":{\"boolValue\":true}}"))
        #expect(json.contains("\"status\":{\"code\":2,\"message\":\"boom\"}"))
        #expect(json.contains("\"timeUnixNano\":\"5\",\"name\":\"exception\""))
        #expect(try JSONSerialization.jsonObject(with: Data(json.utf8)) is [String: Any])
    }

    @Test("TRACEPARENT parses per W3C Trace Context and rejects malformed values", arguments: [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", true),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", false),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", false),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", false),
        ("00-0AF7651916CD43DD8448EB211C80319X-b7ad6b7169203331-01", false),
    ])
    func traceparent(value: String, valid: Bool) {
        let context = OTelSpanContext(traceparent: value)
        #expect((context != nil) == valid)
        if let context { #expect(context.isRemote && context.traceparent.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331")) }
    }

    @Test("configuration follows the standard OTEL_ variables")
    func configuration() {
        let c = TelemetryConfiguration(environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%3Dcret, team=data",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_SERVICE_NAME": "bx-15m", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=ignored",
            "K8S_POD_NAME": "bx-15m-abcde", "K8S_NAMESPACE_NAME": "market", "K8S_JOB_NAME": "bx-15m-29000000",
        ])
        #expect(c.tracesEndpoint == "http://collector:4318/v1/traces")
        #expect(c.metricsEndpoint == "http://collector:4318/v1/metrics")
        #expect(c.headers.map { "\($0.0)=\($0.1)" } == ["api-key=s=cret", "team=data"])
        #expect(c.timeoutMilliseconds == 2500)
        let resource = Dictionary(uniqueKeysWithValues: c.resource.map { ($0.0, $0.1.toSpanAttribute()) })
        #expect(resource["service.name"] == .string("bx-15m"))
        #expect(resource["deployment.environment"] == .string("prod"))
        #expect(resource["k8s.pod.name"] == .string("bx-15m-abcde"))
        #expect(resource["k8s.namespace.name"] == .string("market"))
        #expect(resource["k8s.job.name"] == .string("bx-15m-29000000"))
        #expect(resource["service.version"] != nil)

        let specific = TelemetryConfiguration(environment: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/custom"])
        #expect(specific.tracesEndpoint == "http://t:1/custom")
        #expect(TelemetryConfiguration(environment: [:]).tracesEndpoint == "http://localhost:4318/v1/traces")
        #expect(TelemetryConfiguration(environment: ["OTEL_TRACES_EXPORTER": "none"]).tracesEndpoint == nil)
        let off = TelemetryConfiguration(environment: ["OTEL_SDK_DISABLED": "true"])
        #expect(off.tracesEndpoint == nil && off.metricsEndpoint == nil)
        let bad = TelemetryConfiguration(environment: ["TRACEPARENT": "nonsense", "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"])
        #expect(bad.parent == nil && bad.warnings.count == 2)
    }

    @Test("503 with Retry-After is retried after exactly that wait, on the clock")
    func retriesAfterRetryAfter() async {
        let clock = ManualClock(now: 0)
        let http = ScriptedHTTP([response(503, retryAfter: "2"), response(200)])
        let exporter = OTLPHTTPExporter(http: http, headers: [("x-team", "data")], requestTimeoutMilliseconds: 1000, clock: clock, logger: logger)
        let task = Task { await exporter.export(Array("{}".utf8), to: "http://c/v1/traces", deadline: 10_000) }
        while clock.sleeperCount == 0 { await Task.yield() }
        #expect(clock.pendingDeadlines == [2_000])
        clock.set(2_000)
        let outcome = await task.value
        #expect(outcome.delivered && outcome.attempts == 2)
        #expect(http.sent.allSatisfy { $0.method == .post && $0.headers.contains { $0 == ("Content-Type", "application/json") } })
        #expect(http.sent[0].headers.contains { $0 == ("x-team", "data") })
    }

    @Test("429, 502, 503 and 504 are retried; 400 never is", arguments: [(429, 2), (502, 2), (504, 2), (400, 1), (401, 1), (500, 1)])
    func retryPolicy(status: Int, attempts: Int) async {
        let clock = ManualClock(now: 0)
        let http = ScriptedHTTP([response(status, retryAfter: "0"), response(200)])
        let exporter = OTLPHTTPExporter(http: http, headers: [], requestTimeoutMilliseconds: 1000, clock: clock, logger: logger)
        let outcome = await exporter.export([], to: "http://c/v1/traces", deadline: 10_000)
        #expect(outcome.attempts == attempts)
        #expect(outcome.delivered == (attempts == 2))
    }

    @Test("no retry is started that would end after the deadline")
    func deadline() async {
        let clock = ManualClock(now: 0)
        let http = ScriptedHTTP([response(503, retryAfter: "30")])
        let exporter = OTLPHTTPExporter(http: http, headers: [], requestTimeoutMilliseconds: 1000, clock: clock, logger: logger)
        let outcome = await exporter.export([], to: "http://c/v1/traces", deadline: 5_000)
        #expect(!outcome.delivered && outcome.attempts == 1)
        #expect(outcome.problem?.contains("no time left") == true)
    }

    @Test("a full queue sheds successful HTTP request spans first, keeps unit, database and error spans, and counts what it dropped")
    func boundedQueue() async throws {
        let exported = Captured()
        let processor = BatchSpanProcessor(capacity: 3, reserve: 2, batchSize: 100, timeoutMilliseconds: 1000, clock: ManualClock(now: 0)) { batch, _ in
            exported.add(batch.map(\.name))
            return true
        }
        let context = OTelSpanContext(traceID: try #require(TraceID(hex: "0af7651916cd43dd8448eb211c80319c")), spanID: try #require(SpanID(hex: "b7ad6b7169203331")))
        func span(_ name: String, kind: SpanKind, _ attributes: SpanAttributes = [:], error: Bool = false) -> FinishedSpan {
            FinishedSpan(context: context, name: name, kind: kind, startNanoseconds: 1, endNanoseconds: 2, attributes: attributes, events: [],
                         status: error ? SpanStatus(code: .error) : nil)
        }
        let request = span("GET /fapi/v1/klines", kind: .client, ["http.request.method": "GET"])
        #expect(BatchSpanProcessor.isSheddable(request))
        for _ in 0..<3 { processor.append(request) }
        processor.append(request)  // full: a request span is shed
        processor.append(span("INSERT klines_m1", kind: .client, ["db.operation.name": "INSERT"]))  // kept, in the reserve
        processor.append(span("GET /fapi/v1/klines", kind: .client, ["http.request.method": "GET"], error: true))  // a failure: kept
        processor.append(span("extract klines", kind: .internal))  // reserve full: pushes the oldest request span out
        let report = await processor.shutdown()
        #expect(report == BatchSpanProcessor.Report(exported: 5, lost: 0, droppedRequests: 2, droppedOther: 0))
        #expect(exported.names == ["GET /fapi/v1/klines", "GET /fapi/v1/klines", "INSERT klines_m1", "GET /fapi/v1/klines", "extract klines"])
    }

    static let refused: Result<HTTPResponse, any Error> =
        .failure(HTTPTransportError(kind: .connect, detail: "Couldn't connect to server", url: "http://localhost:4318/v1/traces"))

    @Test("nobody configured an endpoint and nothing listens there: one attempt, one info line, nothing more this run")
    func defaultEndpointAbsent() async throws {
        let clock = ManualClock(now: 0)
        let http = ScriptedHTTP([Self.refused, Self.refused])
        let sink = LineSink()
        let logger = Logger(label: "telemetry") { LogLineHandler(label: $0, level: .info, sink: sink) }
        let configuration = TelemetryConfiguration(environment: [:])
        #expect(configuration.defaultEndpoints == ["http://localhost:4318/v1/traces", "http://localhost:4318/v1/metrics"])
        let exporter = OTLPHTTPExporter(http: http, headers: [], requestTimeoutMilliseconds: 10_000, clock: clock, logger: logger,
                                        defaultEndpoints: configuration.defaultEndpoints)
        let traces = await exporter.export([], to: "http://localhost:4318/v1/traces", deadline: 10_000)
        let metrics = await exporter.export([], to: "http://localhost:4318/v1/metrics", deadline: 10_000)
        #expect(!traces.delivered && traces.attempts == 1)
        #expect(!metrics.delivered && metrics.attempts == 0)
        #expect(http.sent.count == 1)
        #expect(clock.now() == 0, "no backoff was waited for")
        #expect(exporter.defaultEndpointAbsent)
        let lines = sink.text.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("\"level\":\"info\"") == true && lines.first?.contains("no OTLP collector") == true)
    }

    @Test("a configured endpoint that refuses is retried for at most one second in a row, then tried once per export")
    func configuredEndpointRefusing() async throws {
        let clock = ManualClock(now: 0)
        let http = ScriptedHTTP(Array(repeating: Self.refused, count: 20))
        let configuration = TelemetryConfiguration(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"])
        #expect(configuration.defaultEndpoints.isEmpty)
        let exporter = OTLPHTTPExporter(http: http, headers: [], requestTimeoutMilliseconds: 10_000, clock: clock, logger: logger,
                                        defaultEndpoints: configuration.defaultEndpoints)
        let first = try await clock.drive(step: 50) {
            await exporter.export([], to: "http://collector:4318/v1/traces", deadline: 10_000)
        }
        #expect(!first.delivered)
        // Backoffs of 100, 200 and 400 ms fit in the second; the next (800 ms) would not.
        #expect(first.attempts == 4)
        #expect(clock.now() <= 1_000)
        clock.set(1_500)
        let later = await exporter.export([], to: "http://collector:4318/v1/metrics", deadline: 11_500)
        #expect(later.attempts == 1 && clock.now() == 1_500)
        #expect(!exporter.defaultEndpointAbsent)
    }

    @Test("shutdown cancels an export still in flight at the flush deadline instead of waiting for it")
    func shutdownBoundsInFlightExport() async throws {
        let clock = ManualClock(now: 0)
        let started = Flag()
        let processor = BatchSpanProcessor(batchSize: 1, timeoutMilliseconds: 60_000, clock: clock) { _, _ in
            started.set()
            // A collector that accepts and never answers: only cancellation ends this export.
            do { try await Task.sleep(nanoseconds: 3_600 * 1_000_000_000) } catch { return false }
            return true
        }
        processor.start()
        let context = OTelSpanContext(traceID: try #require(TraceID(hex: "0af7651916cd43dd8448eb211c80319c")), spanID: try #require(SpanID(hex: "b7ad6b7169203331")))
        processor.append(FinishedSpan(context: context, name: "x", kind: .internal, startNanoseconds: 1, endNanoseconds: 2, attributes: [:], events: [], status: nil))
        while !started.isSet { await Task.yield() }
        let shutdown = Task { await processor.shutdown(deadline: 1_000) }
        while clock.sleeperCount == 0 { await Task.yield() }
        #expect(clock.pendingDeadlines == [1_000])
        clock.set(1_000)
        let report = await shutdown.value
        #expect(report == BatchSpanProcessor.Report(exported: 0, lost: 1))
    }
}

/// A flag set once, read from any task.
final class Captured: @unchecked Sendable {
    private let lock = NSLock()
    private var value: [String] = []
    func add(_ names: [String]) { lock.withLock { value += names } }
    var names: [String] { lock.withLock { value } }
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

@Suite("Secrets stay secret, headers stay headers", .timeLimit(.minutes(1)))
struct SecretsAndHeadersTests {
    @Test("an OTLP header value that decodes to CR, LF or NUL, or a name that is not an HTTP token, is not sent; the warning does not show it",
          arguments: ["x-a=1%0d%0aX-Injected:%20yes", "x-a=1%0aX-Injected:%20yes", "x-a=abc%00def", "x a: b=1"])
    func headerInjection(value: String) {
        let c = TelemetryConfiguration(environment: ["OTEL_EXPORTER_OTLP_HEADERS": value + ",api-key=k3y"])
        #expect(c.headers.map(\.0) == ["api-key"], "\(c.headers)")
        #expect(c.warnings.count == 1, "\(c.warnings)")
        #expect(c.warnings.allSatisfy { !$0.contains("Injected") && !$0.contains("%0") && !$0.contains("\r") && !$0.contains("\n") })
    }

    @Test("an OTLP protocol other than http/json is said once, naming the variable; http/json and unset say nothing", arguments: [
        (["OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"], "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
        (["OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"], "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"),
        (["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"], "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc"),
        (["OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP/JSON"], nil), ([:], nil),
    ] as [([String: String], String?)])
    func protocolWarning(env: [String: String], named: String?) {
        let warnings = TelemetryConfiguration(environment: env).warnings.filter { $0.contains("PROTOCOL") }
        if let named {
            #expect(warnings.count == 1 && warnings[0].hasPrefix(named), "\(warnings)")
        } else {
            #expect(warnings.isEmpty)
        }
    }

    @Test("a malformed header entry is named by position, never by its (secret) text")
    func malformedHeader() {
        let c = TelemetryConfiguration(environment: ["OTEL_EXPORTER_OTLP_HEADERS": "authorization-Bearer-s3cr3t"])
        #expect(c.headers.isEmpty)
        #expect(c.warnings.contains { $0.contains("entry 1") })
        #expect(!c.warnings.joined().contains("s3cr3t"))
    }

    @Test("credentials in a URL show as REDACTED:REDACTED, as OpenTelemetry's HTTP conventions require", arguments: [
        ("http://user:secret@host:8080/fapi/v1/klines?symbol=X", "http://REDACTED:REDACTED@host:8080/fapi/v1/klines?symbol=X"),
        ("https://token@host/", "https://REDACTED:REDACTED@host/"),
        ("https://host/path?q=a@b", "https://host/path?q=a@b"),
        ("https://fapi.binance.com", "https://fapi.binance.com"),
    ])
    func urlCredentials(url: String, shown: String) {
        #expect(URLCredentials.redacted(url) == shown)
    }

    @Test("an OTLP endpoint with credentials is never shown with them")
    func endpointCredentials() {
        let c = TelemetryConfiguration(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://u:hunter2@collector:4318"])
        #expect(c.tracesEndpoint == nil)
        #expect(!c.warnings.isEmpty && !c.warnings.joined().contains("hunter2"), "\(c.warnings)")
        #expect(TelemetryConfiguration.redacted("https://u:hunter2@c:4318/v1/traces?k=v") == "https://REDACTED:REDACTED@c:4318/v1/traces")
    }
}
