import BinanceAPI
import BinanceSimulator
import Clocks
import ExtractorCLI
import Foundation
import OTLPReceiver
import Telemetry
import TestSupport
import Testing

/// Real exports of real runs to an OTLP receiver on loopback, checked with the official schema.
@Suite("Traces and metrics a collector accepts", .serialized, .timeLimit(.minutes(3)))
struct TelemetryTests {
    struct Run {
        let status: Int32
        let output: String
        let errors: String
        let seconds: Double
    }

    static func run(_ args: [String], env: [String: String], sim: SimulatorFixture, db: TestDatabase, clock: any WallClock) async -> Run {
        let out = LineSink(), err = LineSink()
        let started = Date()
        let status = await ExtractorCLI.run(arguments: ["klines", "--api-url", sim.baseURL, "--mysql-uri", db.uriText] + args,
                                            environment: env.merging(["BINANCE_KLINES_SOURCE": "rest"]) { given, _ in given },
                                            context: RunContext(clock: clock, output: out, errors: err))
        return Run(status: status, output: out.text, errors: err.text, seconds: Date().timeIntervalSince(started))
    }

    static func setUp() async throws -> (OTLPReceiver, SimulatorFixture, TestDatabase, ManualClock) {
        let receiver = OTLPReceiver()
        try await receiver.start()
        let clock = ManualClock(now: KlinesEndToEndTests.now)
        return (receiver, try await SimulatorFixture.start(clock: clock), try await TestDatabase.make(), clock)
    }

    @Test("a run exports a valid trace: one root, a span per unit, HTTP and database spans beneath their unit")
    func traceStructure() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        let run = await Self.run(["--timeframes", "15m,1h", "--symbols", "BTCUSDT,ETHUSDT", "--batch-size", "50"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint], sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        let bodies = await receiver.bodies(path: "/v1/traces")
        let validation = try OTLPValidation.validateTraces(bodies)
        #expect(validation.passed, "\(validation.output)")

        let spans = TraceTree.spans(in: bodies)
        let roots = spans.filter { $0.parentSpanID.isEmpty }
        try #require(roots.count == 1)
        let root = roots[0]
        #expect(root.name == "klines")
        #expect(root.attributes["binance.timeframes"] == "15m,1h")
        #expect(root.attributes["binance.symbols.count"] == "2")
        #expect(root.attributes["binance_extractor.dry_run"] == "0" || root.attributes["binance_extractor.dry_run"] == "false")
        #expect(Set(spans.map(\.traceID)).count == 1)

        let units = spans.filter { $0.parentSpanID == root.spanID && $0.name.hasPrefix("extract ") }
        #expect(units.count == 4)
        // One operation name for every unit; which unit is said by its attributes (low-cardinality span names).
        #expect(Set(units.map(\.name)) == ["extract klines"])
        #expect(Set(units.map { "\($0.attributes["binance.symbol"] ?? "?") \($0.attributes["binance.interval"] ?? "?")" })
                == ["BTCUSDT 15m", "BTCUSDT 1h", "ETHUSDT 15m", "ETHUSDT 1h"])
        for unit in units {
            let children = spans.filter { $0.parentSpanID == unit.spanID }
            let http = children.filter { $0.name == "GET /fapi/v1/klines" }
            let inserts = children.filter { $0.name.hasPrefix("INSERT klines_") }
            #expect(!http.isEmpty && !inserts.isEmpty, "unit \(unit.name) children: \(children.map(\.name))")
            #expect(unit.attributes["binance.klines.fetched"] != nil && unit.attributes["binance.klines.written"] != nil)
            #expect(unit.attributes["binance.range.start"] != nil && unit.attributes["binance.symbol"] != nil)
            for span in http {
                #expect(span.kind == 3)
                for key in ["http.request.method", "url.full", "server.address", "server.port", "http.response.status_code",
                            "binance.request.weight", "binance.used_weight"] {
                    #expect(span.attributes[key] != nil, "\(key) missing on \(span.name)")
                }
                #expect(span.attributes["url.full"]?.hasPrefix(sim.baseURL) == true)
            }
            for span in inserts {
                #expect(span.kind == 3)
                #expect(span.attributes["db.system.name"] == "mariadb")
                #expect(span.attributes["db.namespace"] == db.uri.database)
                #expect(span.attributes["db.operation.name"] == "INSERT")
                #expect(span.attributes["db.operation.batch.size"] != nil)
                #expect(span.attributes["server.address"] == "127.0.0.1")
                // No row values in any attribute: only the documented keys.
                #expect(Set(span.attributes.keys) == ["db.system.name", "db.namespace", "db.collection.name", "db.operation.name",
                                                     "db.operation.batch.size", "server.address", "server.port"])
            }
        }

        // Metrics arrive too, valid for the schema.
        let metrics = await receiver.bodies(path: "/v1/metrics")
        let metricsValidation = try OTLPValidation.validateMetrics(metrics)
        #expect(metricsValidation.passed, "\(metricsValidation.output)")
        let text = String(decoding: metrics.first ?? Data(), as: UTF8.self)
        for name in ["binance_extractor.klines.written", "binance_extractor.requests", "binance_extractor.request_weight",
                     "http.client.request.duration"] {
            #expect(text.contains("\"\(name)\""), "metric \(name) missing")
        }

        // Log lines written inside spans carry their trace and span ids.
        let ids = Set(spans.map(\.spanID))
        let correlated = run.errors.split(separator: "\n").compactMap { line -> [String: Any]? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }.filter { $0["trace_id"] != nil }
        #expect(!correlated.isEmpty)
        for line in correlated {
            #expect(line["trace_id"] as? String == root.traceID)
            #expect(ids.contains(line["span_id"] as? String ?? ""))
        }
    }

    @Test("TRACEPARENT makes the run's root span a child of that context")
    func traceparent() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        let run = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint,
                                       "TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
                                 sim: sim, db: db, clock: clock)
        #expect(run.status == 0)
        let spans = TraceTree.spans(in: await receiver.bodies(path: "/v1/traces"))
        let root = try #require(spans.first { $0.name == "klines" })
        #expect(root.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(root.parentSpanID == "00f067aa0ba902b7")
        #expect(spans.allSatisfy { $0.traceID == "4bf92f3577b34da6a3ce929d0e0e4736" })
    }

    @Test("a TRACEPARENT whose sampled flag is off: no span is exported, metrics still are, the log says why once")
    func traceparentNotSampled() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        let run = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint,
                                       "TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"],
                                 sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        #expect(await receiver.requests.filter { $0.path == "/v1/traces" }.isEmpty)
        #expect(await receiver.requests.filter { $0.path == "/v1/metrics" }.count == 1)
        #expect(run.errors.components(separatedBy: "sampled flag is off").count == 2)
        // The log lines still name the caller's trace, so they join its (unsampled) trace in a log search.
        #expect(run.errors.contains("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""))
    }

    @Test("LOG_FORMAT: JSON when piped, text on a terminal or when asked, a bad value is exit 2 naming it")
    func logFormat() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        func run(_ env: [String: String], terminal: Bool) async -> (Int32, [Substring]) {
            let out = LineSink(), err = LineSink()
            let status = await ExtractorCLI.run(
                arguments: ["klines", "--api-url", sim.baseURL, "--mysql-uri", db.uriText, "--timeframes", "1h", "--symbols", "BTCUSDT", "--summary", "json"],
                environment: env.merging(["BINANCE_KLINES_SOURCE": "rest", "OTEL_SDK_DISABLED": "true"]) { given, _ in given },
                context: RunContext(clock: clock, output: out, errors: err, errorsIsTerminal: terminal))
            return (status, err.text.split(separator: "\n").filter { !$0.hasPrefix("\r") && !$0.isEmpty })
        }
        let piped = await run([:], terminal: false)
        #expect(piped.0 == 0 && !piped.1.isEmpty && piped.1.allSatisfy { $0.hasPrefix("{\"ts\":") }, "\(piped.1)")
        let asked = await run(["LOG_FORMAT": "TEXT"], terminal: false)
        #expect(asked.0 == 0)
        let started = try #require(asked.1.first { $0.contains("run starting") })
        // `2026-... info     binance-extractor: run starting command=klines ...`
        #expect(started.contains(" info ") && started.contains("binance-extractor: run starting") && started.contains(" command=klines"), "\(started)")
        #expect(asked.1.allSatisfy { !$0.hasPrefix("{") })
        let terminal = await run([:], terminal: true)
        #expect(terminal.1.contains { $0.contains("binance-extractor: run starting") })
        let forcedJSON = await run(["LOG_FORMAT": "json"], terminal: true)
        #expect(forcedJSON.1.filter { $0.hasPrefix("{") }.count >= 2)
        let bad = await run(["LOG_FORMAT": "yaml"], terminal: false)
        #expect(bad.0 == 2)
        #expect(bad.1.contains { $0.contains("LOG_FORMAT='yaml'") })
    }

    @Test("a 503 with Retry-After is retried and the trace still arrives")
    func retryAfter503() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        await receiver.script([.status(503, retryAfterSeconds: 1)])
        let run = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint], sim: sim, db: db, clock: clock)
        #expect(run.status == 0)
        let requests = await receiver.requests.filter { $0.path == "/v1/traces" }
        // The 503'd batch is sent again as it was; batches that leave later in the run (scheduled delay) arrive too.
        #expect(requests.map(\.status).prefix(2) == [503, 200])
        #expect(requests.dropFirst().allSatisfy { $0.status == 200 })
        #expect(requests.count >= 2 && requests[0].body == requests[1].body)
        #expect(!run.errors.contains("telemetry not delivered"))
        #expect(try OTLPValidation.validateTraces(await receiver.bodies(path: "/v1/traces")).passed)
    }

    @Test("a 400 is not retried, and neither it nor a partial success changes the exit status")
    func badRequestNotRetried() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        await receiver.script([.status(400, retryAfterSeconds: nil), .partialSuccess(rejected: 3)])
        let run = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint], sim: sim, db: db, clock: clock)
        #expect(run.status == 0)
        // Not retried: no request body and no span is sent twice. (A run slowed by a busy machine, the suite's heavy tests
        // beside it, may export more batches on the exporter's schedule: they hold other spans.)
        let traces = await receiver.requests.filter { $0.path == "/v1/traces" }
        let ids = TraceTree.spans(in: traces.map(\.body)).map(\.spanID)
        #expect(traces.first?.status == 400 && Set(traces.map(\.body)).count == traces.count, "\(traces.map(\.status))")
        #expect(!ids.isEmpty && Set(ids).count == ids.count, "a span sent twice: \(ids.count) spans, \(Set(ids).count) distinct")
        #expect(run.errors.contains("collector refused telemetry; not retrying"))
        #expect(run.errors.contains("collector accepted telemetry only in part"))
        #expect(run.errors.contains("telemetry not delivered"))
    }

    @Test("a collector that never answers neither fails the run nor delays it past the export timeout")
    func hangingCollector() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        await receiver.script([], then: .hang)
        let run = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "700"],
                                 sim: sim, db: db, clock: clock)
        #expect(run.status == 0)
        #expect(try await db.count("klines_h1") == 24)
        let warnings = run.errors.split(separator: "\n").filter { $0.contains("telemetry not delivered") }
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("\"spans_lost\":\"") == true)
        // Spans and metrics share one flush deadline of OTEL_EXPORTER_OTLP_TIMEOUT: the run takes at most that much longer
        // than the same run without telemetry, measured right after it (so a machine slowed by the suite's other tests
        // slows both alike).
        let quiet = try await TestDatabase.make()
        defer { Task { await quiet.drop() } }
        let baseline = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"], env: ["OTEL_SDK_DISABLED": "true"], sim: sim, db: quiet, clock: clock)
        #expect(baseline.status == 0)
        #expect(run.seconds < baseline.seconds + 2, "took \(run.seconds) s, \(baseline.seconds) s without telemetry")
    }

    /// Lines the run logged from its telemetry.
    static func telemetryLines(_ errors: String) -> [Substring] {
        errors.split(separator: "\n").filter { $0.contains("\"logger\":\"telemetry\"") }
    }

    @Test("with no OTEL variable and no collector at the default endpoint, a run pays nothing: one info line, no warning",
          .enabled(if: !LoopbackPort.isListening(4318), "something listens on localhost:4318"))
    func noCollectorByDefault() async throws {
        let clock = ManualClock(now: KlinesEndToEndTests.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let run = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT,ETHUSDT"], env: [:], sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        #expect(try await db.count("klines_h1") == 48)
        let lines = Self.telemetryLines(run.errors)
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.contains("\"level\":\"info\"") == true && lines.first?.contains("no OTLP collector") == true)
        #expect(!run.errors.contains("telemetry not delivered"))
        // Before the fix this waited out the 10 s export timeout; the bound is generous, the point is "no wait".
        #expect(run.seconds < 5, "took \(run.seconds) s")
    }

    @Test("a configured collector that refuses connections costs one warning and no wait")
    func refusingCollector() async throws {
        let clock = ManualClock(now: KlinesEndToEndTests.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let db = try await TestDatabase.make()
        defer { Task { await sim.stop(); await db.drop() } }
        let port = try LoopbackPort.closed()
        let run = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(port)"], sim: sim, db: db, clock: clock)
        #expect(run.status == 0, "\(run.errors)")
        #expect(try await db.count("klines_h1") == 24)
        let lines = Self.telemetryLines(run.errors)
        #expect(lines.count == 1, "\(lines)")
        #expect(lines.first?.contains("\"level\":\"warning\"") == true && lines.first?.contains("telemetry not delivered") == true)
        #expect(run.seconds < 5, "took \(run.seconds) s")
    }

    @Test("time spent waiting for request weight shows as spans beneath the waiting unit, and as a metric")
    func rateLimitWaitVisible() async throws {
        let receiver = OTLPReceiver()
        try await receiver.start()
        var configuration = BinanceSimulator.Configuration()
        configuration.setWeightLimit(8, windowSeconds: 1)
        let sim = try await SimulatorFixture.start(configuration: configuration)
        let db = try await TestDatabase.make()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        // 2 symbols x 2 days of 1m: 12 pages of weight 2 through a budget of 8 per second.
        let run = await Self.run(["--timeframes", "1m", "--symbols", "BTCUSDT,ETHUSDT", "--start", "2024-01-01", "--end", "2024-01-03"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint], sim: sim, db: db, clock: SystemClock())
        #expect(run.status == 0, "\(run.errors)")
        #expect(await sim.simulator.statistics.tooManyRequests == 0)
        let spans = TraceTree.spans(in: await receiver.bodies(path: "/v1/traces"))
        let units = Set(spans.filter { $0.name.hasPrefix("extract ") }.map(\.spanID))
        let waits = spans.filter { $0.name == "rate limit wait" }
        #expect(!waits.isEmpty)
        #expect(waits.allSatisfy { units.contains($0.parentSpanID) })
        let metrics = String(decoding: await receiver.bodies(path: "/v1/metrics").first ?? Data(), as: UTF8.self)
        #expect(metrics.contains("\"binance_extractor.rate_limit.wait\""))
    }

    @Test("OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED turn export off")
    func exportOff() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        let endpoint = await receiver.endpoint
        _ = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"],
                           env: ["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "none"], sim: sim, db: db, clock: clock)
        #expect(await receiver.requests.filter { $0.path == "/v1/traces" }.isEmpty)
        _ = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT"],
                           env: ["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "true", "BINANCE_KLINES_SOURCE": "rest"], sim: sim, db: db, clock: clock)
        #expect(await receiver.requests.filter { $0.path == "/v1/traces" }.isEmpty)
        #expect(await receiver.requests.filter { $0.path == "/v1/metrics" }.count == 1)
    }

    @Test("a failed unit's span has status ERROR and an exception event; resource names the service and pod")
    func errorsAndResource() async throws {
        let (receiver, sim, db, clock) = try await Self.setUp()
        defer { Task { await receiver.stop(); await sim.stop(); await db.drop() } }
        let run = await Self.run(["--timeframes", "1h", "--symbols", "BTCUSDT,NOPEUSDT"],
                                 env: ["OTEL_EXPORTER_OTLP_ENDPOINT": await receiver.endpoint, "OTEL_SERVICE_NAME": "bx-hourly",
                                       "K8S_POD_NAME": "bx-hourly-x1", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test"],
                                 sim: sim, db: db, clock: clock)
        #expect(run.status == 1)
        let bodies = await receiver.bodies(path: "/v1/traces")
        #expect(try OTLPValidation.validateTraces(bodies).passed)
        let spans = TraceTree.spans(in: bodies)
        let failed = try #require(spans.first { $0.name == "extract klines" && $0.attributes["binance.symbol"] == "NOPEUSDT" })
        #expect(failed.error)
        #expect(failed.eventNames.contains("exception"))
        #expect(spans.first { $0.name == "klines" }?.error == true)
        let text = String(decoding: bodies[0], as: UTF8.self)
        for expected in ["\"bx-hourly\"", "\"k8s.pod.name\"", "\"bx-hourly-x1\"", "\"deployment.environment\"", "\"service.version\""] {
            #expect(text.contains(expected), "resource lacks \(expected)")
        }
    }
}
