import Foundation
import Tracing

/// The run's metrics: counters and histograms with attributes, kept in memory and exported once at the end of
/// the run as OTLP JSON (cumulative temporality).
public final class RunMetrics: @unchecked Sendable {
    /// The metrics of the run the current task belongs to (set by the command for the run's duration).
    @TaskLocal public static var current: RunMetrics?

    public struct Key: Hashable, Sendable {
        let name: String
        let attributes: [String: String]
    }

    private let lock = NSLock()
    private var counters: [Key: Double] = [:]
    private var histograms: [Key: Histogram] = [:]
    private var gauges: [Key: Int64] = [:]
    private var descriptions: [String: (unit: String, text: String, integer: Bool)] = [:]
    public let startNanoseconds: UInt64

    /// Request durations in seconds: explicit bucket bounds.
    static let durationBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]

    struct Histogram {
        var counts: [UInt64]
        var sum: Double = 0
        var count: UInt64 = 0
        var min = Double.infinity
        var max = -Double.infinity
    }

    public init(startNanoseconds: UInt64 = DefaultTracerClock.now.nanosecondsSinceEpoch) {
        self.startNanoseconds = startNanoseconds
    }

    /// Adds to a monotonic counter.
    public func add(_ name: String, _ value: Double, unit: String, description: String, integer: Bool = true,
                    attributes: [String: String] = [:]) {
        lock.withLock {
            descriptions[name] = (unit, description, integer)
            counters[Key(name: name, attributes: attributes), default: 0] += value
        }
    }

    /// Sets a gauge (a value at this moment: units behind, streams connected).
    public func set(_ name: String, _ value: Int64, unit: String, description: String, attributes: [String: String] = [:]) {
        lock.withLock {
            descriptions[name] = (unit, description, true)
            gauges[Key(name: name, attributes: attributes)] = value
        }
    }

    /// Records one value in a histogram of durations in seconds.
    public func record(_ name: String, seconds: Double, description: String, attributes: [String: String] = [:]) {
        lock.withLock {
            descriptions[name] = ("s", description, false)
            let key = Key(name: name, attributes: attributes)
            var h = histograms[key] ?? Histogram(counts: Array(repeating: 0, count: Self.durationBounds.count + 1))
            let bucket = Self.durationBounds.firstIndex { seconds <= $0 } ?? Self.durationBounds.count
            h.counts[bucket] += 1
            h.sum += seconds
            h.count += 1
            h.min = Swift.min(h.min, seconds)
            h.max = Swift.max(h.max, seconds)
            histograms[key] = h
        }
    }

    /// Current value of a counter summed over attributes (for tests and the summary).
    public func total(_ name: String) -> Double {
        lock.withLock { counters.filter { $0.key.name == name }.values.reduce(0, +) }
    }

    public var isEmpty: Bool { lock.withLock { counters.isEmpty && histograms.isEmpty && gauges.isEmpty } }

    /// `ExportMetricsServiceRequest` as OTLP JSON.
    public func otlpJSON(resource: [(String, SpanAttribute)], now: UInt64) -> String {
        let (counters, histograms, gauges, descriptions) = lock.withLock { (self.counters, self.histograms, self.gauges, self.descriptions) }
        func attrs(_ a: [String: String]) -> String {
            OTLPJSON.attributes(a.sorted { $0.key < $1.key }.map { ($0.key, SpanAttribute.string($0.value)) })
        }
        var metrics: [String] = []
        for name in Set(counters.keys.map(\.name)).sorted() {
            let d = descriptions[name]!
            let points = counters.filter { $0.key.name == name }.sorted { "\($0.key.attributes)" < "\($1.key.attributes)" }.map { key, value in
                let v = d.integer ? "\"asInt\":\"\(Int64(value))\"" : "\"asDouble\":\(value)"
                return "{\"attributes\":\(attrs(key.attributes)),\"startTimeUnixNano\":\"\(startNanoseconds)\",\"timeUnixNano\":\"\(now)\",\(v)}"
            }
            // AGGREGATION_TEMPORALITY_CUMULATIVE = 2.
            metrics.append("{\"name\":\(OTLPJSON.quote(name)),\"description\":\(OTLPJSON.quote(d.text)),\"unit\":\(OTLPJSON.quote(d.unit)),"
                           + "\"sum\":{\"dataPoints\":[\(points.joined(separator: ","))],\"aggregationTemporality\":2,\"isMonotonic\":true}}")
        }
        for name in Set(histograms.keys.map(\.name)).sorted() {
            let d = descriptions[name]!
            let points = histograms.filter { $0.key.name == name }.sorted { "\($0.key.attributes)" < "\($1.key.attributes)" }.map { key, h in
                "{\"attributes\":\(attrs(key.attributes)),\"startTimeUnixNano\":\"\(startNanoseconds)\",\"timeUnixNano\":\"\(now)\","
                    + "\"count\":\"\(h.count)\",\"sum\":\(h.sum),\"bucketCounts\":[\(h.counts.map { "\"\($0)\"" }.joined(separator: ","))],"
                    + "\"explicitBounds\":[\(Self.durationBounds.map { "\($0)" }.joined(separator: ","))],\"min\":\(h.min),\"max\":\(h.max)}"
            }
            metrics.append("{\"name\":\(OTLPJSON.quote(name)),\"description\":\(OTLPJSON.quote(d.text)),\"unit\":\"s\","
                           + "\"histogram\":{\"dataPoints\":[\(points.joined(separator: ","))],\"aggregationTemporality\":2}}")
        }
        for name in Set(gauges.keys.map(\.name)).sorted() {
            let d = descriptions[name]!
            let points = gauges.filter { $0.key.name == name }.sorted { "\($0.key.attributes)" < "\($1.key.attributes)" }.map { key, value in
                "{\"attributes\":\(attrs(key.attributes)),\"timeUnixNano\":\"\(now)\",\"asInt\":\"\(value)\"}"
            }
            metrics.append("{\"name\":\(OTLPJSON.quote(name)),\"description\":\(OTLPJSON.quote(d.text)),\"unit\":\(OTLPJSON.quote(d.unit)),"
                           + "\"gauge\":{\"dataPoints\":[\(points.joined(separator: ","))]}}")
        }
        return "{\"resourceMetrics\":[{\"resource\":{\"attributes\":\(OTLPJSON.attributes(resource))},\"scopeMetrics\":[{\"scope\":"
            + "{\"name\":\"binance-extractor\",\"version\":\(OTLPJSON.quote(TelemetryConfiguration.version))},\"metrics\":["
            + metrics.joined(separator: ",") + "]}]}]}"
    }
}
