import Tracing

/// OTLP/JSON encoding, as the OTLP specification's "JSON Protobuf Encoding" says: lowerCamelCase field names, trace
/// and span ids as lowercase hex (not base64), enums as integers, 64-bit integers as decimal strings.
public enum OTLPJSON {
    /// `ExportTraceServiceRequest` for one batch of spans.
    public static func traces(_ spans: [FinishedSpan], resource: [(String, SpanAttribute)], scopeVersion: String) -> String {
        var out = "{\"resourceSpans\":[{\"resource\":{\"attributes\":"
        out += attributes(resource)
        out += "},\"scopeSpans\":[{\"scope\":{\"name\":\"binance-extractor\",\"version\":\(quote(scopeVersion))},\"spans\":["
        out += spans.map(span).joined(separator: ",")
        out += "]}]}]}"
        return out
    }

    static func span(_ s: FinishedSpan) -> String {
        var out = "{\"traceId\":\"\(s.context.traceID.hex)\",\"spanId\":\"\(s.context.spanID.hex)\""
        if let parent = s.context.parentSpanID { out += ",\"parentSpanId\":\"\(parent.hex)\"" }
        out += ",\"name\":\(quote(s.name)),\"kind\":\(kind(s.kind))"
        out += ",\"startTimeUnixNano\":\"\(s.startNanoseconds)\",\"endTimeUnixNano\":\"\(s.endNanoseconds)\""
        var attrs: [(String, SpanAttribute)] = []
        s.attributes.forEach { key, value in attrs.append((key, value)) }
        out += ",\"attributes\":" + attributes(attrs.sorted { $0.0 < $1.0 })
        if !s.events.isEmpty {
            out += ",\"events\":[" + s.events.map { event in
                var eventAttrs: [(String, SpanAttribute)] = []
                event.attributes.forEach { eventAttrs.append(($0, $1)) }
                return "{\"timeUnixNano\":\"\(event.nanosecondsSinceEpoch)\",\"name\":\(quote(event.name)),\"attributes\":"
                    + attributes(eventAttrs.sorted { $0.0 < $1.0 }) + "}"
            }.joined(separator: ",") + "]"
        }
        if let status = s.status {
            // STATUS_CODE_OK = 1, STATUS_CODE_ERROR = 2.
            out += ",\"status\":{\"code\":\(status.code == .ok ? 1 : 2)"
            if let message = status.message { out += ",\"message\":\(quote(message))" }
            out += "}"
        }
        return out + "}"
    }

    /// SPAN_KIND_INTERNAL = 1, SERVER = 2, CLIENT = 3, PRODUCER = 4, CONSUMER = 5.
    static func kind(_ kind: SpanKind) -> Int {
        switch kind {
        case .server: 2
        case .client: 3
        case .producer: 4
        case .consumer: 5
        default: 1
        }
    }

    public static func attributes(_ list: [(String, SpanAttribute)]) -> String {
        "[" + list.map { "{\"key\":\(quote($0.0)),\"value\":\(anyValue($0.1))}" }.joined(separator: ",") + "]"
    }

    static func anyValue(_ value: SpanAttribute) -> String {
        switch value {
        case .int32(let v): return "{\"intValue\":\"\(v)\"}"
        case .int64(let v): return "{\"intValue\":\"\(v)\"}"
        case .double(let v): return v.isFinite ? "{\"doubleValue\":\(v)}" : "{\"stringValue\":\"\(v)\"}"
        case .bool(let v): return "{\"boolValue\":\(v)}"
        case .string(let v): return "{\"stringValue\":\(quote(v))}"
        case .int32Array(let a): return array(a.map { "{\"intValue\":\"\($0)\"}" })
        case .int64Array(let a): return array(a.map { "{\"intValue\":\"\($0)\"}" })
        case .doubleArray(let a): return array(a.map { anyValue(.double($0)) })
        case .boolArray(let a): return array(a.map { "{\"boolValue\":\($0)}" })
        case .stringArray(let a): return array(a.map { "{\"stringValue\":\(quote($0))}" })
        case .stringConvertible(let v): return "{\"stringValue\":\(quote(v.description))}"
        case .stringConvertibleArray(let a): return array(a.map { "{\"stringValue\":\(quote($0.description))}" })
        default: return "{\"stringValue\":\(quote("\(value)"))}"
        }
    }

    static func array(_ values: [String]) -> String { "{\"arrayValue\":{\"values\":[" + values.joined(separator: ",") + "]}}" }

    static func quote(_ s: String) -> String { LogLineHandler.quote(s) }
}
