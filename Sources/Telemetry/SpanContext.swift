import Foundation
import Tracing

/// A W3C trace context: 16-byte trace id, 8-byte span id, flags.
public struct OTelSpanContext: Sendable, Hashable {
    public var traceID: TraceID
    public var spanID: SpanID
    /// The span this one is a child of (nil for a root span).
    public var parentSpanID: SpanID?
    /// Set for a context received from outside (TRACEPARENT), whose span is not ours.
    public var isRemote: Bool
    public var sampled: Bool

    public init(traceID: TraceID, spanID: SpanID, parentSpanID: SpanID? = nil, isRemote: Bool = false, sampled: Bool = true) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.isRemote = isRemote
        self.sampled = sampled
    }

    /// Parses a W3C `traceparent` header value: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`
    /// (W3C Trace Context, section 3.2). All-zero ids are invalid.
    public init?(traceparent: String) {
        let parts = traceparent.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].count == 2, parts[0] != "ff", Hex.bytes(parts[0]) != nil,
              let trace = TraceID(hex: parts[1]), let span = SpanID(hex: parts[2]),
              parts[3].count == 2, let flags = Hex.bytes(parts[3]), parts[0] != "00" || parts.count == 4
        else { return nil }
        self.init(traceID: trace, spanID: span, parentSpanID: nil, isRemote: true, sampled: flags[0] & 1 == 1)
    }

    /// This context as a `traceparent` value.
    public var traceparent: String { "00-\(traceID.hex)-\(spanID.hex)-\(sampled ? "01" : "00")" }
}

/// A 16-byte trace id, printed as 32 lowercase hex digits (as OTLP JSON requires).
public struct TraceID: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init?(hex: some StringProtocol) {
        guard hex.count == 32, let b = Hex.bytes(hex), b.contains(where: { $0 != 0 }) else { return nil }
        bytes = b
    }
    public init<G: RandomNumberGenerator>(using rng: inout G) {
        bytes = Hex.randomNonZero(count: 16, using: &rng)
    }
    public var hex: String { Hex.string(bytes) }
    public var description: String { hex }
}

/// An 8-byte span id, printed as 16 lowercase hex digits.
public struct SpanID: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init?(hex: some StringProtocol) {
        guard hex.count == 16, let b = Hex.bytes(hex), b.contains(where: { $0 != 0 }) else { return nil }
        bytes = b
    }
    public init<G: RandomNumberGenerator>(using rng: inout G) {
        bytes = Hex.randomNonZero(count: 8, using: &rng)
    }
    public var hex: String { Hex.string(bytes) }
    public var description: String { hex }
}

enum Hex {
    static let digits = Array("0123456789abcdef".utf8)

    /// Random bytes, not all zero (an all-zero trace or span id is invalid).
    static func randomNonZero<G: RandomNumberGenerator>(count: Int, using rng: inout G) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        while true {
            var any = false
            for i in 0..<count {
                bytes[i] = UInt8(truncatingIfNeeded: rng.next())
                if bytes[i] != 0 { any = true }
            }
            if any { return bytes }
        }
    }

    static func string(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lowercase or uppercase hex to bytes; nil for anything else.
    static func bytes(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = value(utf8[i]), let lo = value(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// Where a span's context travels inside a `ServiceContext`.
enum OTelSpanContextKey: ServiceContextKey {
    typealias Value = OTelSpanContext
    static var nameOverride: String? { "otel-span-context" }
}

extension ServiceContext {
    /// The span context this service context carries, if any.
    public var otelSpanContext: OTelSpanContext? {
        get { self[OTelSpanContextKey.self] }
        set { self[OTelSpanContextKey.self] = newValue }
    }
}
