import Foundation

/// Renders OTLP JSON trace bodies as trees of spans with their durations:
/// ```
/// klines  1.234 s
/// ├─ extract futures BTCUSDT 15m  0.412 s  [fetched=96 written=96]
/// │  ├─ SELECT klines_m15  2.1 ms
/// │  └─ GET /fapi/v1/klines  35.0 ms  [200]
/// ```
public enum TraceTree {
    public struct Node {
        public var spanID: String
        public var parentSpanID: String
        public var traceID: String
        public var name: String
        public var start: UInt64
        public var end: UInt64
        public var attributes: [String: String]
        public var error: Bool
        /// OTLP span kind: 1 internal, 2 server, 3 client.
        public var kind: Int
        public var eventNames: [String]
    }

    /// Every span in the bodies.
    public static func spans(in bodies: [Data]) -> [Node] {
        var out: [Node] = []
        for body in bodies {
            guard let json = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { continue }
            for rs in json["resourceSpans"] as? [[String: Any]] ?? [] {
                for ss in rs["scopeSpans"] as? [[String: Any]] ?? [] {
                    for span in ss["spans"] as? [[String: Any]] ?? [] {
                        var attributes: [String: String] = [:]
                        for a in span["attributes"] as? [[String: Any]] ?? [] {
                            guard let key = a["key"] as? String, let value = a["value"] as? [String: Any], let v = value.values.first else { continue }
                            attributes[key] = "\(v)"
                        }
                        let status = span["status"] as? [String: Any]
                        out.append(Node(spanID: span["spanId"] as? String ?? "", parentSpanID: span["parentSpanId"] as? String ?? "",
                                        traceID: span["traceId"] as? String ?? "", name: span["name"] as? String ?? "",
                                        start: UInt64(span["startTimeUnixNano"] as? String ?? "") ?? 0,
                                        end: UInt64(span["endTimeUnixNano"] as? String ?? "") ?? 0,
                                        attributes: attributes, error: (status?["code"] as? Int) == 2,
                                        kind: span["kind"] as? Int ?? 0,
                                        eventNames: (span["events"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }))
                    }
                }
            }
        }
        return out
    }

    /// The tree of one trace (the newest one if `traceID` is nil).
    public static func render(_ bodies: [Data], traceID: String? = nil) -> String {
        let all = spans(in: bodies)
        guard let trace = traceID ?? all.max(by: { $0.start < $1.start })?.traceID else { return "(no spans)\n" }
        let spans = all.filter { $0.traceID == trace }
        let ids = Set(spans.map(\.spanID))
        let children = Dictionary(grouping: spans, by: { ids.contains($0.parentSpanID) ? $0.parentSpanID : "" })
        var out = "trace \(trace): \(spans.count) spans\n"
        func line(_ node: Node, _ prefix: String, _ branch: String) {
            let ms = Double(node.end &- node.start) / 1_000_000
            let duration = ms >= 1000 ? String(format: "%.3f s", ms / 1000) : String(format: "%.1f ms", ms)
            var notes: [String] = []
            // A unit's span is named by its operation; which unit it is, is in its attributes.
            let unit = ["binance.market", "binance.symbol", "binance.interval"].compactMap { node.attributes[$0] }
            if node.attributes["binance.unit.status"] != nil, !unit.isEmpty { notes.append(unit.joined(separator: " ")) }
            if let s = node.attributes["http.response.status_code"] { notes.append(s) }
            if let f = node.attributes["binance.klines.fetched"], let w = node.attributes["binance.klines.written"] {
                notes.append("fetched=\(f) written=\(w)")
            }
            if let n = node.attributes["db.operation.batch.size"] { notes.append("rows=\(n)") }
            if node.error { notes.append("ERROR") }
            out += "\(prefix)\(branch)\(node.name)  \(duration)" + (notes.isEmpty ? "" : "  [\(notes.joined(separator: " "))]") + "\n"
            let kids = (children[node.spanID] ?? []).sorted { $0.start < $1.start }
            let childPrefix = prefix + (branch == "├─ " ? "│  " : branch.isEmpty ? "" : "   ")
            for (i, kid) in kids.enumerated() { line(kid, childPrefix, i == kids.count - 1 ? "└─ " : "├─ ") }
        }
        for root in (children[""] ?? []).sorted(by: { $0.start < $1.start }) { line(root, "", "") }
        return out
    }
}
