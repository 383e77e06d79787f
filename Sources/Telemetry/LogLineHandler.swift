import Foundation
import Logging
import Tracing
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// How log lines look (`LOG_FORMAT`): one JSON object per line for collectors, or a line a person reads on a terminal.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `{"ts":"2026-11-22T01:02:03.456Z","level":"info","logger":"supervisor","msg":"...","unit":"..."}`
    case json
    /// `2026-11-22T01:02:03.456Z info     supervisor: ... unit="futures BTCUSDT 1h"`
    case text
}

/// A swift-log handler writing one line per event to standard error, in the run's `LogFormat`, with the trace and
/// span ids of the span the line was written in.
public struct LogLineHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: LineSink
    private let format: LogFormat

    public init(label: String, level: Logger.Level, format: LogFormat = .json, sink: LineSink = .standardError,
                metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        logLevel = level
        self.format = format
        self.sink = sink
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        // Correlation: a line written inside a span names its trace and span.
        if let span = ServiceContext.current?.otelSpanContext {
            fields["trace_id"] = .string(span.traceID.hex)
            fields["span_id"] = .string(span.spanID.hex)
        }
        let keys = fields.keys.sorted()
        var line: String
        switch format {
        case .json:
            line = "{\"ts\":\"\(Self.timestamp())\",\"level\":\"\(event.level.rawValue)\",\"logger\":\(Self.quote(label)),"
            line += "\"msg\":\(Self.quote(event.message.description))"
            for key in keys { line += ",\(Self.quote(key)):\(Self.quote(Self.flatten(fields[key]!)))" }
            line += "}\n"
        case .text:
            let level = event.level.rawValue
            line = "\(Self.timestamp()) \(level)\(String(repeating: " ", count: max(1, 9 - level.count)))\(label): \(Self.plain(event.message.description))"
            for key in keys {
                let value = Self.flatten(fields[key]!)
                // logfmt: a value with spaces, quotes or '=' is quoted; control characters never reach the terminal raw.
                let bare = !value.isEmpty && !value.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0.value < 0x20 }
                line += " \(key)=\(bare ? value : Self.quote(value))"
            }
            line += "\n"
        }
        sink.write(line)
    }

    /// A message as one line: its line breaks and control characters escaped, as JSON escapes them.
    static func plain(_ text: String) -> String {
        text.unicodeScalars.contains { $0.value < 0x20 } ? String(quote(text).dropFirst().dropLast()) : text
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array(let a): "[" + a.map(flatten).joined(separator: ", ") + "]"
        case .dictionary(let d): "{" + d.keys.sorted().map { "\($0): \(flatten(d[$0]!))" }.joined(separator: ", ") + "}"
        }
    }

    /// A JSON string literal.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Now as `2026-12-06T10:17:06.099Z`. Computed here, not by `ISO8601DateFormatter`, which builds a calendar through
    /// ICU for every line (slow, and its tables would stay resident in a long-running process).
    public static func timestamp() -> String { timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))) }

    /// `ms` (Unix milliseconds) as ISO 8601 in UTC with milliseconds.
    public static func timestamp(milliseconds ms: Int64) -> String {
        let days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
        let inDay = ms - days * 86_400_000
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ width: Int) -> String {
            let text = String(v)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(inDay / 3_600_000, 2)):\(pad(inDay / 60_000 % 60, 2)):"
            + "\(pad(inDay / 1000 % 60, 2)).\(pad(inDay % 1000, 3))Z"
    }
}

/// Where output lines go; one lock so lines from many threads never interleave.
public final class LineSink: @unchecked Sendable {
    private let lock = NSLock()
    private let handle: FileHandle?
    private var captured: [String] = []
    private var broken = false

    /// Writes to a file handle.
    public init(handle: FileHandle) { self.handle = handle }

    /// Keeps lines in memory (tests read them with `text`).
    public init() { handle = nil }

    public static let standardError = LineSink(handle: .standardError)
    public static let standardOutput = LineSink(handle: .standardOutput)

    /// Writes the whole text, or as much as the reader takes. A reader that went away (`| head -1`, a closed
    /// terminal) is not an error of the run: the rest of the output is dropped and the run goes on writing its data.
    /// (`FileHandle.write` would trap on EPIPE, and SIGPIPE would kill the process: `ExtractorCLI.run` ignores it.)
    public func write(_ text: String) {
        lock.withLock {
            guard let handle else { captured.append(text); return }
            guard !broken else { return }
            var bytes = Array(text.utf8)[...]
            while !bytes.isEmpty {
                let n = bytes.withUnsafeBytes { systemWrite(handle.fileDescriptor, $0.baseAddress, $0.count) }
                if n > 0 {
                    bytes = bytes.dropFirst(n)
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    broken = true
                    return
                }
            }
        }
    }

    /// True once a write failed (the reader is gone); later writes are dropped.
    public var isBroken: Bool { lock.withLock { broken } }

    /// Everything written to an in-memory sink.
    public var text: String { lock.withLock { captured.joined() } }

    /// Whether the sink is a terminal.
    public var isTerminal: Bool { handle.map { isatty($0.fileDescriptor) != 0 } ?? false }
}
