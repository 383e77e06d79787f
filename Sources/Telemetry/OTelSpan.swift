import Foundation
import Tracing

/// A finished span, ready for export.
public struct FinishedSpan: Sendable {
    public var context: OTelSpanContext
    public var name: String
    public var kind: SpanKind
    public var startNanoseconds: UInt64
    public var endNanoseconds: UInt64
    public var attributes: SpanAttributes
    public var events: [SpanEvent]
    public var status: SpanStatus?

    public init(context: OTelSpanContext, name: String, kind: SpanKind, startNanoseconds: UInt64, endNanoseconds: UInt64,
                attributes: SpanAttributes, events: [SpanEvent], status: SpanStatus?) {
        self.context = context
        self.name = name
        self.kind = kind
        self.startNanoseconds = startNanoseconds
        self.endNanoseconds = endNanoseconds
        self.attributes = attributes
        self.events = events
        self.status = status
    }
}

/// A span of our tracer: records until `end`, then hands itself to the tracer's processor.
public final class OTelSpan: Tracing.Span, @unchecked Sendable {
    public let context: ServiceContext
    let spanContext: OTelSpanContext
    let kind: SpanKind
    let startNanoseconds: UInt64
    private let lock = NSLock()
    private var name: String
    private var attributesStorage: SpanAttributes = [:]
    private var eventsStorage: [SpanEvent] = []
    private var statusStorage: SpanStatus?
    private var ended = false
    private let onEnd: @Sendable (FinishedSpan) -> Void

    init(name: String, context: ServiceContext, spanContext: OTelSpanContext, kind: SpanKind, startNanoseconds: UInt64,
         onEnd: @escaping @Sendable (FinishedSpan) -> Void) {
        var context = context
        context.otelSpanContext = spanContext
        self.context = context
        self.spanContext = spanContext
        self.kind = kind
        self.startNanoseconds = startNanoseconds
        self.name = name
        self.onEnd = onEnd
    }

    public var isRecording: Bool { lock.withLock { !ended } }

    public var operationName: String {
        get { lock.withLock { name } }
        set { lock.withLock { if !ended { name = newValue } } }
    }

    public var attributes: SpanAttributes {
        get { lock.withLock { attributesStorage } }
        set { lock.withLock { if !ended { attributesStorage = newValue } } }
    }

    public func setStatus(_ status: SpanStatus) {
        lock.withLock {
            guard !ended else { return }
            // OK is final; ERROR overrides UNSET (OpenTelemetry trace API, "Set Status").
            if statusStorage?.code == .ok { return }
            statusStorage = status
        }
    }

    public func addEvent(_ event: SpanEvent) {
        lock.withLock { if !ended { eventsStorage.append(event) } }
    }

    /// Records an `exception` event (semantic conventions: `exception.type`, `exception.message`) and marks the
    /// span as failed.
    public func recordError(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> some TracerInstant) {
        var attrs = attributes
        attrs["exception.type"] = "\(type(of: error))"
        attrs["exception.message"] = "\(error)"
        addEvent(SpanEvent(name: "exception", at: instant(), attributes: attrs))
        setStatus(SpanStatus(code: .error, message: "\(error)"))
    }

    public func addLink(_ link: SpanLink) {}

    public func end(at instant: @autoclosure () -> some TracerInstant) {
        let finished: FinishedSpan? = lock.withLock {
            guard !ended else { return nil }
            ended = true
            return FinishedSpan(context: spanContext, name: name, kind: kind, startNanoseconds: startNanoseconds,
                                endNanoseconds: max(startNanoseconds, instant().nanosecondsSinceEpoch),
                                attributes: attributesStorage, events: eventsStorage, status: statusStorage)
        }
        if let finished { onEnd(finished) }
    }
}

/// Our `Tracer`: makes spans, gives them W3C ids, and passes finished spans to a sink (the batch processor).
public final class OTelTracer: Tracer, @unchecked Sendable {
    public typealias Span = OTelSpan
    private let sink: @Sendable (FinishedSpan) -> Void
    private let lock = NSLock()
    private var rng = SystemRandomNumberGenerator()

    public init(sink: @escaping @Sendable (FinishedSpan) -> Void) {
        self.sink = sink
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> OTelSpan {
        let parentContext = context()
        let parent = parentContext.otelSpanContext
        let spanContext: OTelSpanContext = lock.withLock {
            OTelSpanContext(traceID: parent?.traceID ?? TraceID(using: &rng), spanID: SpanID(using: &rng),
                            parentSpanID: parent?.spanID, isRemote: false, sampled: parent?.sampled ?? true)
        }
        return OTelSpan(name: operationName, context: parentContext, spanContext: spanContext, kind: kind,
                        startNanoseconds: instant().nanosecondsSinceEpoch, onEnd: sink)
    }

    public func forceFlush() {}

    public func activeSpan(identifiedBy context: ServiceContext) -> OTelSpan? { nil }

    // Context propagation across processes is not used: the extractor only receives TRACEPARENT.
    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract)
        where Extract.Carrier == Carrier {}

    public func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject)
        where Inject.Carrier == Carrier {}
}
