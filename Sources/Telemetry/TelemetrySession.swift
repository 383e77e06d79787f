import BuildInfo
import Clocks
import HTTPTransport
import Logging
import Tracing

/// One run's telemetry: the tracer and metrics the run records into, and their export at the end.
///
/// Telemetry never slows or fails the extraction: spans go into a bounded queue, exports happen on their own
/// task and HTTP worker, and `shutdown` is bounded by `OTEL_EXPORTER_OTLP_TIMEOUT`. What could not be delivered is
/// reported in one warning; the run's exit status does not change.
public final class TelemetrySession: Sendable {
    public let configuration: TelemetryConfiguration
    public let tracer: OTelTracer
    public let metrics: RunMetrics
    private let processor: BatchSpanProcessor?
    private let exporter: OTLPHTTPExporter?
    private let http: CurlHTTPClient?
    private let clock: any WallClock
    private let logger: Logger

    public init(configuration: TelemetryConfiguration, clock: any WallClock = SystemClock(), logger: Logger) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        metrics = RunMetrics()
        for warning in configuration.warnings { logger.warning("\(warning)") }
        if configuration.tracesEndpoint != nil || configuration.metricsEndpoint != nil {
            let http = CurlHTTPClient(options: .init(workers: 1, connectTimeoutMilliseconds: min(2_000, configuration.timeoutMilliseconds),
                                                     totalTimeoutMilliseconds: configuration.timeoutMilliseconds,
                                                     userAgent: BuildInfo.userAgent))
            self.http = http
            exporter = OTLPHTTPExporter(http: http, headers: configuration.headers,
                                        requestTimeoutMilliseconds: configuration.timeoutMilliseconds, clock: clock, logger: logger,
                                        defaultEndpoints: configuration.defaultEndpoints)
        } else {
            http = nil
            exporter = nil
        }
        if let url = configuration.tracesEndpoint, let exporter {
            let resource = configuration.resource
            let processor = BatchSpanProcessor(timeoutMilliseconds: configuration.timeoutMilliseconds, clock: clock) { batch, deadline in
                // Nothing listens at the default endpoint: no batch is encoded for nobody.
                guard !exporter.defaultEndpointAbsent else { return false }
                let body = OTLPJSON.traces(batch, resource: resource, scopeVersion: TelemetryConfiguration.version)
                return await exporter.export(Array(body.utf8), to: url, deadline: deadline).delivered
            }
            processor.start()
            self.processor = processor
            // Once export is known to be off for the run, finished spans are not even queued; nor are the spans of a
            // trace whose caller (TRACEPARENT) decided not to sample it (W3C Trace Context, "sampled" flag; the
            // parent-based sampler OpenTelemetry SDKs default to).
            tracer = OTelTracer { span in
                if span.context.sampled && !exporter.defaultEndpointAbsent { processor.append(span) }
            }
            if configuration.parent?.sampled == false {
                logger.info("TRACEPARENT's sampled flag is off: this run's spans are not exported (metrics still are)")
            }
        } else {
            processor = nil
            tracer = OTelTracer { _ in }
        }
    }

    /// The context the run's root span starts in: the `TRACEPARENT` parent, if one was given.
    public var rootContext: ServiceContext {
        var context = ServiceContext.topLevel
        context.otelSpanContext = configuration.parent
        return context
    }

    /// Runs `body` with this session's tracer and metrics as the task's current ones.
    public func run<T>(_ body: () async throws -> T) async rethrows -> T {
        try await withTracer(tracer) {
            try await RunMetrics.$current.withValue(metrics) { try await body() }
        }
    }

    /// Exports the metrics so far (cumulative: each export carries the totals since the start), for a long run that
    /// should not wait for its end (`follow`, every `OTEL_METRIC_EXPORT_INTERVAL`). False when not delivered.
    @discardableResult
    public func exportMetrics() async -> Bool {
        guard let url = configuration.metricsEndpoint, let exporter, !metrics.isEmpty else { return true }
        let body = metrics.otlpJSON(resource: configuration.resource, now: DefaultTracerClock.now.nanosecondsSinceEpoch)
        return await exporter.export(Array(body.utf8), to: url, deadline: clock.now() + Int64(configuration.timeoutMilliseconds)).delivered
    }

    /// Flushes spans, then metrics, both within one deadline (`OTEL_EXPORTER_OTLP_TIMEOUT` from now, and never past
    /// `notAfter`, the end of a requested shutdown); logs one warning if anything was lost.
    public func shutdown(notAfter: Int64? = nil) async {
        defer { http?.shutdown() }
        let deadline = min(clock.now() + Int64(configuration.timeoutMilliseconds), notAfter ?? .max)
        let report = await processor?.shutdown(deadline: deadline) ?? BatchSpanProcessor.Report()
        var metricsLost = false
        if let url = configuration.metricsEndpoint, let exporter, !metrics.isEmpty {
            let body = metrics.otlpJSON(resource: configuration.resource, now: DefaultTracerClock.now.nanosecondsSinceEpoch)
            let outcome = await exporter.export(Array(body.utf8), to: url, deadline: deadline)
            metricsLost = !outcome.delivered
        }
        if report.dropped > 0 {
            logger.warning("spans dropped: the export queue was full; successful HTTP request spans were dropped first, so the run's, units', database and error spans are complete unless other_spans_dropped says otherwise", metadata: [
                "http_request_spans_dropped": "\(report.droppedRequests)", "other_spans_dropped": "\(report.droppedOther)",
                "spans_exported": "\(report.exported)",
            ])
        }
        if exporter?.defaultEndpointAbsent == true {
            // Already said in one info line; nobody configured this endpoint, so nothing was expected there.
        } else if report.lost > 0 || metricsLost {
            logger.warning("telemetry not delivered", metadata: [
                "spans_lost": "\(report.lost)", "spans_exported": "\(report.exported)", "metrics_lost": "\(metricsLost)",
                "endpoint": "\(configuration.tracesEndpoint.map(TelemetryConfiguration.redacted) ?? "none")",
            ])
        } else {
            logger.debug("telemetry exported", metadata: ["spans": "\(report.exported)"])
        }
    }
}
