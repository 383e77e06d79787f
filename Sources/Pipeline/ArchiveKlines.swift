import BinanceAPI
import BinanceArchive
import Clocks
import Foundation
import HTTPTransport
import Logging

/// Where `klines` reads history from (`--source`, `BINANCE_KLINES_SOURCE`).
public enum KlinesSourceMode: String, Sendable, CaseIterable {
    /// Whole closed months from monthly files, whole closed days from daily files, the rest (and whatever a file
    /// lacks) from REST.
    case auto
    /// REST only.
    case rest
    /// Files only; what they lack is reported, not fetched.
    case archive
}

/// One piece of a unit's range: a file of the archives, or a range for REST.
public enum ArchiveSegment: Sendable, Equatable {
    case file(ArchiveFile)
    /// Open times `[start, end]`.
    case rest(start: Int64, end: Int64)
}

/// Splits `[start, end]` (open times) into whole closed months (monthly files), whole closed days (daily files)
/// and the rest (REST). Pure. Files exist for intervals up to a day; longer candles always come from REST (a
/// year of weekly candles is one request). A day counts as closed once it has ended; whether its file is
/// published yet is the archive's answer (404), not a guess.
public enum ArchivePlanner {
    public static func segments(market: Market, symbol: Symbol, interval: KlineInterval, start: Int64, end: Int64,
                                now: Int64) -> [ArchiveSegment] {
        guard end >= start else { return [] }
        guard let length = interval.fixedMilliseconds, length <= 86_400_000 else { return [.rest(start: start, end: end)] }
        let today = Int64.floorDivide(now, 86_400_000) * 86_400_000
        var out: [ArchiveSegment] = []
        var cursor = start
        func flushREST(until next: Int64) {
            if next > cursor { out.append(.rest(start: cursor, end: next - length)) }
        }
        var day = Int64.floorDivide(start + 86_400_000 - 1, 86_400_000) * 86_400_000  // first whole day at or after start
        while day + 86_400_000 <= min(end + length, today) {
            let monthStart = UTCCalendar.startOfMonth(containing: day)
            let monthEnd = UTCCalendar.startOfNextMonth(after: day)
            let (y, m, d) = UTCCalendar.civil(day)
            if day == monthStart, monthEnd <= min(end + length, today) {
                flushREST(until: day)
                out.append(.file(ArchiveFile(market: market, dataset: .klines(interval), symbol: symbol, period: .month(year: y, month: m))))
                cursor = monthEnd
                day = monthEnd
                continue
            }
            flushREST(until: day)
            out.append(.file(ArchiveFile(market: market, dataset: .klines(interval), symbol: symbol, period: .day(year: y, month: m, day: d))))
            cursor = day + 86_400_000
            day += 86_400_000
        }
        if cursor <= end { out.append(.rest(start: cursor, end: end)) }
        return out
    }

    /// A monthly file's daily files, for a month whose monthly file is not there yet.
    public static func days(of file: ArchiveFile) -> [ArchiveFile] {
        guard case .month = file.period else { return [] }
        return stride(from: file.range.lowerBound, to: file.range.upperBound, by: 86_400_000).map { day in
            let (y, m, d) = UTCCalendar.civil(day)
            return ArchiveFile(market: file.market, dataset: file.dataset, symbol: file.symbol, period: .day(year: y, month: m, day: d))
        }
    }
}

extension Int64 {
    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
}

extension UTCCalendar {
    /// Year, month and day of the UTC day holding `ms`.
    static func civil(_ ms: Int64) -> (Int, Int, Int) {
        let c = civil(days: Int64.floorDivide(ms, 86_400_000))
        return (Int(c.year), Int(c.month), Int(c.day))
    }
}

/// What reading one file gave.
public enum ArchiveRead: Sendable {
    /// The verified file's rows (sorted, de-duplicated, each checked as a REST candle would be).
    case rows([Kline])
    /// No such file (yet): a 404, which is normal for recent periods.
    case absent
    /// The archive host cannot be reached this run (said once, by the client): the period comes from REST.
    case unreachable
    /// The file could not be trusted (CHECKSUM mismatch twice, damaged zip, bad rows): its period comes from REST.
    case refused(String)
}

/// Where files come from (binance-sim or data.binance.vision); injectable for tests.
public protocol KlineArchive: Sendable {
    func read(_ file: ArchiveFile, interval: KlineInterval) async -> ArchiveRead
}

/// Downloads through libcurl (keep-alive, timeouts), checks the CHECKSUM before a single row is used, downloads a
/// mismatching file once more, and retries 5xx and transfer errors with backoff.
public struct ArchiveClient: KlineArchive {
    public let baseURL: String
    let http: any HTTPClient
    let clock: any WallClock
    let logger: Logger
    let attempts = 3
    /// Set once the archive host cannot be reached at all (no route, refused, TLS): the run stops asking it and
    /// takes everything from REST, with one warning.
    private let unreachable = UnreachableFlag()

    public init(baseURL: String, http: any HTTPClient, clock: any WallClock, logger: Logger) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.http = http
        self.clock = clock
        self.logger = logger
    }

    /// GET with retries on 5xx and transfer errors; nil for 404/403 (S3 answers 403 for some missing keys).
    func get(_ path: String) async throws -> [UInt8]? {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try await http.get(baseURL + "/" + path)
                if response.status == 200 { return response.body }
                if response.status == 404 || response.status == 403 { return nil }
                if response.status < 500 || attempt >= attempts {
                    throw ArchiveError("GET \(path) answered \(response.status)")
                }
            } catch let error as HTTPTransportError where error.kind == .connect || error.kind == .tls {
                if unreachable.set() {
                    logger.warning("the archive host cannot be reached; this run takes everything from REST", metadata: [
                        "archive_url": "\(URLCredentials.redacted(baseURL))", "error": "\(error)",
                    ])
                }
                throw error
            } catch let error as HTTPTransportError where attempt < attempts && error.isRetryable {
                logger.debug("archive download failed; retrying", metadata: ["path": "\(path)", "error": "\(error)"])
            }
            try await clock.sleep(until: clock.now() + Int64(200 << attempt))
        }
    }

    public func read(_ file: ArchiveFile, interval: KlineInterval) async -> ArchiveRead {
        if unreachable.isSet { return .unreachable }
        do {
            guard let checksumBytes = try await get(file.checksumPath) else { return .absent }
            let checksum = try ArchiveChecksum(parsing: String(decoding: checksumBytes, as: UTF8.self), fileName: file.fileName)
            var zip: [UInt8]?
            for _ in 0..<2 {
                guard let bytes = try await get(file.path) else { return .absent }
                if checksum.matches(bytes) { zip = bytes; break }
                logger.info("archive file does not match its CHECKSUM; downloading it again", metadata: ["file": "\(file.fileName)"])
            }
            guard let zip else { return .refused("\(file.fileName) does not match its CHECKSUM, twice") }
            let entry = try ZipArchive.firstEntry(of: zip)
            var rows = try ArchiveCSV.klines(entry.bytes, file: file.fileName)
            rows.removeAll { !file.range.contains($0.openTime) }
            for row in rows {
                do { try row.validate(interval: interval) } catch { return .refused("\(file.fileName): \(error)") }
            }
            return .rows(rows)
        } catch {
            return unreachable.isSet ? .unreachable : .refused("\(file.fileName): \(error)")
        }
    }
}

final class UnreachableFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    /// Sets the flag; true the first time.
    func set() -> Bool { lock.withLock { defer { value = true }; return !value } }
    var isSet: Bool { lock.withLock { value } }
}

public struct ArchiveError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
