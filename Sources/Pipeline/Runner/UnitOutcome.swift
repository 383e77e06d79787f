import BinanceAPI
import BinanceArchive
import StoreKit
import Telemetry

extension SymbolExtractor {
    public typealias Outcome = UnitOutcome
}

/// What one attempt of a unit did, whatever its dataset: its plan, requests, rows fetched and written, the first and
/// last time of the rows stored and the key a retry resumes after, where its rows came from, and what it could not get.
public struct UnitOutcome: Sendable, Equatable {
    public var plan: FetchPlan?
    public var requests = 0
    public var fetched = 0
    public var written = 0
    /// The first and last time (open, funding, trade or metric time) of the rows the store accepted: what is stored,
    /// not what was fetched.
    public var firstTime: Int64?
    public var lastTime: Int64?
    /// The key (open time, funding time, trade id) of the last row the store accepted: a retry resumes after it
    /// instead of fetching the unit's range again.
    public var resumeAfter: Int64?
    /// The still-open candle was seen and left out.
    public var skippedOpenCandle = false
    /// Klines: true when the unit reached the newest closed candle Binance has (or the end of its range), false
    /// when the catch-up cap stopped it first; nil for datasets that do not say.
    public var caughtUp: Bool?
    /// The newest open time stored before the run (nil: nothing was), to tell whether the run moved the unit.
    public var storedBefore: Int64?
    /// Klines that came from archive files (the rest of `fetched` came from REST), and files read.
    public var fromArchive = 0
    public var archiveFiles = 0
    /// `--source archive`: candles of the range no file held (not fetched from REST).
    public var archiveLacked: Int64 = 0
    /// The first and last time (open time, trade time) of what no file held, for the message that names it.
    public var lackedSpan: ClosedRange<Int64>?
    /// `--source archive`: the run may take nothing from REST, so what the files did not give fails the unit.
    public var archiveOnly = false
    /// Files the run could not use, each with the reason (at most `maxNamedFiles`; `unreadFileCount` counts all).
    public var unreadFiles: [String] = []
    public var unreadFileCount = 0
    /// The archive host could not be reached during the run: nothing the run found missing may be confirmed.
    public var archiveUnreachable = false
    /// Rows written twice: those of a file refused after some of its rows were written (a CRC-32 failure found at
    /// its end), written again from REST. `written` counts each row once.
    public var rewritten = 0
    /// `--dry-run` with archives: the files the run would read (with their size from a HEAD request, when the
    /// host gives one) and the open-time ranges `[from, to]` left to REST.
    public var plannedFiles: [PlannedFile] = []
    public var restRanges: [RESTRange] = []
    /// The run was cancelled; what was fetched was written.
    public var interrupted = false
    /// A stream follower: closed candles written from final events, candles REST corrected (its values differed from
    /// the stream's), confirmed, and fetched from REST because their final event never came.
    public var fromStream = 0
    public var corrected = 0
    public var confirmed = 0
    public var missedFinals = 0
    /// The archive files read whole, for the ledger (`archive_files`), recorded once their rows are written.
    public var ledgerFiles: [ArchiveFileRecord] = []

    public init() {}

    /// Neither moved the unit's newest stored row nor reached Binance's newest: the unit is stuck.
    public var stalled: Bool {
        guard caughtUp == false else { return false }
        guard let last = lastTime else { return true }
        return storedBefore.map { last <= $0 } ?? false
    }

    static let maxNamedFiles = 8

    static func union(_ a: ClosedRange<Int64>?, _ b: ClosedRange<Int64>?) -> ClosedRange<Int64>? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a.lowerBound, b.lowerBound)...max(a.upperBound, b.upperBound)
    }

    /// `--source archive`: `count` rows of `[from, to]` that no file held.
    public mutating func lack(_ count: Int64, from: Int64, to: Int64) {
        guard count > 0 else { return }
        archiveLacked += count
        lackedSpan = Self.union(lackedSpan, from...max(from, to))
    }

    /// A file the run could not use (not published, unreachable, refused), for the message and the summary.
    public mutating func unread(_ file: ArchiveFile, _ read: ArchiveRead) {
        let reason: String
        switch read {
        case .rows: return
        case .absent: reason = "not published (404)"
        case .unreachable: reason = "archive host unreachable"; archiveUnreachable = true
        case .refused(let why): reason = "refused: \(why)"
        }
        unreadFileCount += 1
        if unreadFiles.count < Self.maxNamedFiles { unreadFiles.append("\(file.fileName): \(reason)") }
    }

    /// `--source archive`: times `[from, to]` that no file covers (today, a part of a day), rows uncounted.
    public mutating func uncovered(from: Int64, to: Int64) {
        guard to >= from else { return }
        unreadFileCount += 1
        if unreadFiles.count < Self.maxNamedFiles {
            unreadFiles.append("\(UTCCalendar.iso8601(from)) .. \(UTCCalendar.iso8601(to)): no file covers it yet")
        }
    }

    /// Notes `[from, to]` as left to REST (a dry run's plan), joined to the range before when they touch.
    mutating func addRESTRange(from: Int64, to: Int64, step: Int64) {
        if let previous = restRanges.last, previous.to + step == from {
            restRanges[restRanges.count - 1].to = to
        } else {
            restRanges.append(RESTRange(from: from, to: to))
        }
    }

    /// Adds what another attempt, or another part of the same unit, did.
    public mutating func absorb(_ other: UnitOutcome) {
        plan = plan ?? other.plan
        requests += other.requests
        fetched += other.fetched
        written += other.written
        firstTime = [firstTime, other.firstTime].compactMap { $0 }.min()
        lastTime = [lastTime, other.lastTime].compactMap { $0 }.max()
        resumeAfter = [resumeAfter, other.resumeAfter].compactMap { $0 }.max()
        skippedOpenCandle = skippedOpenCandle || other.skippedOpenCandle
        caughtUp = other.caughtUp ?? caughtUp
        fromArchive += other.fromArchive
        archiveFiles += other.archiveFiles
        archiveLacked += other.archiveLacked
        lackedSpan = Self.union(lackedSpan, other.lackedSpan)
        archiveOnly = archiveOnly || other.archiveOnly
        unreadFiles = Array((unreadFiles + other.unreadFiles).prefix(Self.maxNamedFiles))
        unreadFileCount += other.unreadFileCount
        archiveUnreachable = archiveUnreachable || other.archiveUnreachable
        rewritten += other.rewritten
        plannedFiles += other.plannedFiles
        restRanges += other.restRanges
        storedBefore = storedBefore ?? other.storedBefore
        interrupted = other.interrupted
        fromStream += other.fromStream
        corrected += other.corrected
        confirmed += other.confirmed
        missedFinals += other.missedFinals
        ledgerFiles += other.ledgerFiles
    }
}

/// A file a dry run would read.
public struct PlannedFile: Sendable, Equatable {
    public let name: String
    public let path: String
    /// From the HEAD answer's Content-Length; nil when the host gave none.
    public let bytes: Int?
}

/// Open times `[from, to]` a run takes from REST.
public struct RESTRange: Sendable, Equatable {
    public var from: Int64
    public var to: Int64
}

/// `--source archive` did not get the whole range: rows no file held, files that could not be read.
public struct ArchiveShortfall: Error, CustomStringConvertible {
    /// `--source archive` (else: the archive host was unreachable and REST does not keep what the files hold).
    public let archiveOnly: Bool
    public let lacked: Int64
    public let span: ClosedRange<Int64>?
    public let files: [String]
    public let fileCount: Int

    public var description: String {
        var parts: [String] = []
        if lacked > 0 {
            let range = span.map { " between \(UTCCalendar.iso8601($0.lowerBound)) and \(UTCCalendar.iso8601($0.upperBound))" } ?? ""
            parts.append("\(lacked) rows\(range) are in no archive file")
        }
        if fileCount > 0 {
            parts.append("\(fileCount) files were not read (\(files.joined(separator: "; "))\(fileCount > files.count ? "; …" : ""))")
        }
        let what = parts.joined(separator: ", and ")
        if archiveOnly {
            return "--source archive: \(what); nothing is taken from REST in this mode. Run with --source auto to fetch them from REST, "
                + "or end the range (--end) where the files end"
        }
        return "the archive host could not be reached: \(what), and REST does not keep them (older than it serves). Nothing was "
            + "recorded as missing on Binance's side; run again once the archive host answers"
    }
}

/// A unit that failed, with what it had done before.
public struct UnitFailure: Error, CustomStringConvertible {
    public let underlying: any Error
    public let partial: UnitOutcome
    public var description: String { "\(underlying)" }
}
