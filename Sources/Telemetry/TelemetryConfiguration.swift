import BuildInfo
import Foundation
import HTTPTransport
import Tracing

/// Telemetry settings from the standard OpenTelemetry environment variables
/// (OpenTelemetry specification, "Environment Variable Specification" and "OTLP Exporter Configuration").
public struct TelemetryConfiguration: Sendable {
    /// Where spans go (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`,
    /// else `http://localhost:4318/v1/traces`); nil when traces are off.
    public var tracesEndpoint: String?
    public var metricsEndpoint: String?
    /// The endpoints taken from the specification's default (`http://localhost:4318`) because no
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` variable named one. Nobody asked for export there, so when nothing listens the
    /// exporter gives up at once and says so in one info line instead of retrying (README, "Telemetry").
    public var defaultEndpoints: Set<String>
    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`, values percent-decoded.
    public var headers: [(String, String)]
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (ms, default 10000): one export request, and the whole flush at exit.
    public var timeoutMilliseconds: Int
    /// `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000): how often a long run (`follow`) exports its metrics.
    public var metricExportIntervalMilliseconds: Int
    public var resource: [(String, SpanAttribute)]
    /// `TRACEPARENT`: the run's root span becomes a child of this context.
    public var parent: OTelSpanContext?
    /// Problems with the variables, to log once (telemetry never fails a run).
    public var warnings: [String]

    /// `service.version`, the instrumentation scope's version: the project's one version.
    public static let version = BuildInfo.version

    public init(environment env: [String: String], defaultServiceName: String = "binance-extractor") {
        var warnings: [String] = []
        // ENABLE_OTEL=false is petrosa-binance-data-extractor's switch for the same thing.
        let disabled = env["OTEL_SDK_DISABLED"]?.lowercased() == "true"
            || ["false", "0", "no"].contains(env["ENABLE_OTEL"]?.trimmingCharacters(in: .whitespaces).lowercased() ?? "")
        let tracesOff = env["OTEL_TRACES_EXPORTER"].map { $0.lowercased() == "none" } ?? false
        let metricsOff = env["OTEL_METRICS_EXPORTER"].map { $0.lowercased() == "none" } ?? false
        let base = (env["OTEL_EXPORTER_OTLP_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://localhost:4318")
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        let baseIsDefault = env["OTEL_EXPORTER_OTLP_ENDPOINT"].map(\.isEmpty) ?? true
        var defaults: Set<String> = []
        func endpoint(_ specific: String, _ path: String) -> String? {
            let given = env[specific].flatMap { $0.isEmpty ? nil : $0 }
            let url = given ?? trimmed + path
            if given == nil && baseIsDefault { defaults.insert(url) }
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                // The text is not shown: what is not a URL may be anything, a credential included.
                warnings.append("the OTLP endpoint in \(given == nil ? "OTEL_EXPORTER_OTLP_ENDPOINT" : specific) is not an http:// or https:// URL "
                                + "(e.g. http://otel-collector:4318); telemetry export is off")
                return nil
            }
            return url
        }
        // OTLP's protocols are grpc, http/protobuf and http/json ("OTLP Exporter Configuration"); this exporter speaks
        // http/json only. Another choice is said once, not obeyed silently: a gRPC receiver (4317) takes nothing we send.
        let protocolVariables = ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"]
        if !disabled, let (variable, value) = protocolVariables.lazy.compactMap({ name in env[name].map { (name, $0) } })
            .first(where: { $0.1.trimmingCharacters(in: .whitespaces).lowercased() != "http/json" && !$0.1.isEmpty }) {
            warnings.append("\(variable)=\(value) is not supported: this exporter sends OTLP over HTTP with JSON bodies (http/json) to the collector's OTLP/HTTP receiver (port 4318); set \(variable)=http/json or unset it")
        }
        tracesEndpoint = disabled || tracesOff ? nil : endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces")
        metricsEndpoint = disabled || metricsOff ? nil : endpoint("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/v1/metrics")
        defaultEndpoints = defaults
        // A header value is a secret more often than not (an API key): a bad entry is named by its key only, and
        // one that decodes to CR or LF (which would let it smuggle another header in) is refused.
        headers = Self.keyValues(env["OTEL_EXPORTER_OTLP_HEADERS"] ?? "", name: "OTEL_EXPORTER_OTLP_HEADERS", secret: true,
                                 warnings: &warnings).filter { key, value in
            // A header name is an HTTP token (RFC 9110, 5.6.2); a value holds no CR, LF or NUL.
            let token = !key.isEmpty && key.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)
                || "!#$%&'*+-.^_`|~".unicodeScalars.contains($0)) }
            guard token else {
                warnings.append("OTEL_EXPORTER_OTLP_HEADERS: a header name is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~); it is not sent")
                return false
            }
            guard value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else { return true }
            warnings.append("OTEL_EXPORTER_OTLP_HEADERS: the value of header '\(key)' contains a line break or NUL once decoded; it is not sent")
            return false
        }
        if let text = env["OTEL_EXPORTER_OTLP_TIMEOUT"], !text.isEmpty {
            if let ms = Int(text), ms > 0 { timeoutMilliseconds = ms } else {
                warnings.append("OTEL_EXPORTER_OTLP_TIMEOUT='\(text)' is not a positive number of milliseconds; using 10000")
                timeoutMilliseconds = 10_000
            }
        } else {
            timeoutMilliseconds = 10_000
        }
        if let text = env["OTEL_METRIC_EXPORT_INTERVAL"], !text.isEmpty {
            if let ms = Int(text), ms > 0 { metricExportIntervalMilliseconds = ms } else {
                warnings.append("OTEL_METRIC_EXPORT_INTERVAL='\(text)' is not a positive number of milliseconds; using 60000")
                metricExportIntervalMilliseconds = 60_000
            }
        } else {
            metricExportIntervalMilliseconds = 60_000
        }
        // Resource: defaults, then OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME (which wins for service.name).
        var resource: [String: SpanAttribute] = [
            "service.name": .string(defaultServiceName),
            "service.version": .string(Self.version),
            "telemetry.sdk.name": "binance-extractor",
            "telemetry.sdk.language": "swift",
            "telemetry.sdk.version": .string(Self.version),
            "process.pid": .int64(Int64(ProcessInfo.processInfo.processIdentifier)),
            "host.name": .string(ProcessInfo.processInfo.hostName),
        ]
        // Kubernetes' downward API (k8s/ sets these).
        for (variable, key) in [("K8S_POD_NAME", "k8s.pod.name"), ("K8S_JOB_NAME", "k8s.job.name"),
                                ("K8S_NAMESPACE_NAME", "k8s.namespace.name"), ("K8S_NODE_NAME", "k8s.node.name"),
                                ("K8S_CRONJOB_NAME", "k8s.cronjob.name"), ("K8S_DEPLOYMENT_NAME", "k8s.deployment.name")] {
            if let value = env[variable], !value.isEmpty { resource[key] = .string(value) }
        }
        for (key, value) in Self.keyValues(env["OTEL_RESOURCE_ATTRIBUTES"] ?? "", name: "OTEL_RESOURCE_ATTRIBUTES", warnings: &warnings) {
            resource[key] = .string(value)
        }
        if let name = env["OTEL_SERVICE_NAME"], !name.isEmpty { resource["service.name"] = .string(name) }
        self.resource = resource.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if let text = env["TRACEPARENT"], !text.isEmpty {
            parent = OTelSpanContext(traceparent: text)
            if parent == nil {
                warnings.append("TRACEPARENT='\(text)' is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); starting a new trace")
            }
        } else {
            parent = nil
        }
        self.warnings = warnings
    }

    /// `key=value,key2=value2` with percent-encoded values (W3C Baggage format, as the OTel variables use).
    static func keyValues(_ text: String, name: String, secret: Bool = false, warnings: inout [String]) -> [(String, String)] {
        var out: [(String, String)] = []
        for (index, pair) in text.split(separator: ",").enumerated() where !pair.trimmingCharacters(in: .whitespaces).isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else {
                warnings.append(secret ? "\(name): entry \(index + 1) is not key=value; ignored"
                                       : "\(name): '\(pair)' is not key=value; ignored")
                continue
            }
            let key = kv[0].trimmingCharacters(in: .whitespaces)
            let value = kv[1].trimmingCharacters(in: .whitespaces)
            out.append((key, value.removingPercentEncoding ?? value))
        }
        return out
    }

    /// The endpoint without credentials or query, for messages.
    public static func redacted(_ url: String) -> String {
        let shown = URLCredentials.redacted(url)
        return String(shown.prefix { $0 != "?" })
    }
}
