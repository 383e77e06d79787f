import BinanceAPI
import BinanceArchive
import Clocks
import Foundation
import HTTPTransport
import Logging
import Tracing

/// What reading one file gave.
public enum ArchiveRead: Sendable, Equatable {
    /// The verified file's rows were delivered (each accepted by the caller's check, in key order, repeats dropped;
    /// a file out of order delivers its stragglers last, see `ArchiveClient.read`).
    case rows(Int, ArchiveFacts = ArchiveFacts())
    /// No such file (yet): a 404, which is normal for recent periods.
    case absent
    /// The archive host cannot be reached this run (said once, by the client): the period comes from REST.
    case unreachable
    /// The file could not be trusted (CHECKSUM mismatch twice, damaged zip, bad rows): its period comes from REST.
    /// Rows delivered before the fault was found passed every check; the caller takes the period from REST anyway.
    case refused(String)

    /// `read`, `absent`, `unreachable` or `refused`: the span attribute `binance.archive.result`.
    public var label: String {
        switch self {
        case .rows: "read"
        case .absent: "absent"
        case .unreachable: "unreachable"
        case .refused: "refused"
        }
    }
}

/// How one dataset's rows are read from its files: the CSV reader, the row's key (open time, trade id), and the
/// caller's check of each row (false: not this period's, dropped; throws: the file is refused).
public struct ArchiveRowFormat<Row: Sendable & Equatable>: Sendable {
    public let reader: @Sendable (String) -> ArchiveCSV.Rows<Row>
    public let key: @Sendable (Row) -> Int64
    public let accept: @Sendable (Row) throws -> Bool

    public init(reader: @escaping @Sendable (String) -> ArchiveCSV.Rows<Row>, key: @escaping @Sendable (Row) -> Int64,
                accept: @escaping @Sendable (Row) throws -> Bool) {
        self.reader = reader
        self.key = key
        self.accept = accept
    }
}

/// Where files come from (binance-sim or data.binance.vision); injectable for tests.
public protocol ArchiveSource: Sendable {
    /// Streams the rows of one verified file to `deliver`, a batch at a time; errors of `deliver` (a failed write,
    /// cancellation) are thrown, everything about the file itself is the answer.
    func read<Row>(_ file: ArchiveFile, format: ArchiveRowFormat<Row>, deliver: ([Row]) async throws -> Void) async throws -> ArchiveRead

    /// The file's size from a HEAD request (nil: not there), for `--dry-run`.
    func size(of file: ArchiveFile) async -> ArchiveSize
}

extension ArchiveSource {
    /// Reads one file inside its own CLIENT span, `read archive file` beneath its unit, named by kind with the file in
    /// its attributes (`binance.archive.file`, `.path`, `.result`: read, absent, refused, unreachable; `.rows`): the
    /// download, CHECKSUM, unzip, parse and the writes `deliver` makes. Every dataset reads its files through it.
    public func readInSpan<Row>(_ file: ArchiveFile, format: ArchiveRowFormat<Row>, deliver: ([Row]) async throws -> Void) async throws -> ArchiveRead {
        try await withSpan("read archive file", ofKind: .client) { span -> ArchiveRead in
            span.attributes["binance.archive.file"] = file.fileName
            span.attributes["binance.archive.path"] = file.path
            let result = try await read(file, format: format, deliver: deliver)
            span.attributes["binance.archive.result"] = result.label
            switch result {
            case .rows(let count, _): span.attributes["binance.archive.rows"] = Int64(count)
            case .refused(let reason): span.setStatus(SpanStatus(code: .error, message: reason))
            case .absent, .unreachable: break
            }
            return result
        }
    }
}

/// How the archive host served a file that was read: its HTTP validators and the SHA-256 its CHECKSUM gave (and the
/// download matched): what the ledger (`archive_files`) keeps, and `audit --recheck-archives` compares.
public struct ArchiveFacts: Sendable, Equatable {
    public var size: Int?
    public var etag: String?
    public var lastModified: String?
    public var sha256: String?
    public init(size: Int? = nil, etag: String? = nil, lastModified: String? = nil, sha256: String? = nil) {
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
        self.sha256 = sha256
    }

    /// The validators of a response (a HEAD's, or a download's), and the SHA-256 its CHECKSUM gave.
    public init(headers: [String: String], size: Int?, sha256: String? = nil) {
        self.init(size: size, etag: headers["etag"], lastModified: headers["last-modified"], sha256: sha256)
    }

    /// Whether the host now serves another file than the one recorded: a different ETag, Last-Modified or size (a value
    /// either side lacks is not compared).
    public func differs(from recorded: ArchiveFacts) -> Bool {
        func differ<T: Equatable>(_ a: T?, _ b: T?) -> Bool { a != nil && b != nil && a != b }
        return differ(etag, recorded.etag) || differ(lastModified, recorded.lastModified) || differ(size, recorded.size)
    }
}

public enum ArchiveSize: Sendable, Equatable {
    case bytes(Int?)
    case absent
    case unreachable
}

/// Downloads through libcurl (keep-alive, timeouts) into a spool file, resuming a cut transfer with a byte range;
/// checks the CHECKSUM before a single row is used, downloads a mismatching file once more, and retries 5xx and
/// transfer errors with backoff. The zip is read from disk 256 KiB of compressed bytes at a time and unpacked, parsed
/// and delivered 64 KiB at a time; a file out of order is sorted on disk. Memory does not grow with a file's size.
public struct ArchiveClient: ArchiveSource {
    public let baseURL: String
    let http: any HTTPClient
    let clock: any WallClock
    let logger: Logger
    let attempts = 3
    /// Unpacked bytes per step: about 650 klines, the rows one step holds (and the batch handed to the writer).
    static let chunkBytes = 64 << 10
    /// Files downloaded and read at once, whatever the number of workers: each takes its size on the spool's disk
    /// and its buffers in memory. Measured on a one-year backfill of 20 symbols: 4 files in flight peaked at 67 MB,
    /// 2 at 55 MB, for 2 % less speed (the database is the limit either way).
    public static let filesInFlight = 2
    private let slots = FileSlots(Self.filesInFlight)
    /// Set once the archive host cannot be reached at all (no route, refused, TLS): the run stops asking it and
    /// takes everything from REST, with one warning.
    private let unreachable = UnreachableFlag()
    /// Downloads resumed with a `Range` request after a cut (tests and logs).
    public let resumed = SharedCount()

    /// Where downloads are spooled while they are read (a file is never held in memory whole); nil: in memory.
    let spoolDirectory: String?

    public init(baseURL: String, http: any HTTPClient, clock: any WallClock, logger: Logger,
                spoolDirectory: String? = FileManager.default.temporaryDirectory.path) {
        self.spoolDirectory = spoolDirectory
        Self.sweep(spoolDirectory)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.http = http
        self.clock = clock
        self.logger = logger
    }

    /// GET (or HEAD) with retries on 5xx and transfer errors; nil for 404/403 (S3 answers 403 for some missing keys).
    /// A download into `file` that is cut off mid-body resumes where it stopped: `Range: bytes=N-` with `If-Range`
    /// naming the ETag it began with (RFC 9110 14.2, 13.1.5; S3 answers 206, or 200 and the whole object when it has
    /// changed since). A resume that brought bytes does not count as a failed attempt; one that did not does.
    func request(_ path: String, head: Bool = false, into file: String? = nil, observer: (any DownloadObserver)? = nil) async throws -> HTTPResponse? {
        var attempt = 0, resumes = 0
        var resumeFrom = 0, etag: String?
        while true {
            attempt += 1
            do {
                var request = HTTPRequest(method: head ? .head : .get, url: baseURL + "/" + path)
                if let etag, resumeFrom > 0 { request.headers = [("Range", "bytes=\(resumeFrom)-"), ("If-Range", etag)] }
                let response = if let file { try await http.download(request, to: file, from: resumeFrom, observer: observer) } else { try await http.send(request) }
                if response.status == 200 { return response }
                if response.status == 206, resumeFrom > 0, Self.rangeStart(response.headers["content-range"]) == resumeFrom {
                    resumed.add()
                    logger.info("archive download resumed to its end", metadata: ["path": "\(path)", "from_byte": "\(resumeFrom)"])
                    return HTTPResponse(status: 200, headers: response.headers, body: response.body)
                }
                if response.status == 206 || response.status == 416 {
                    // A range that is not the one asked for: start over, whole.
                    (resumeFrom, etag) = (0, nil)
                    if attempt >= attempts { throw ArchiveError("GET \(path) answered \(response.status) to a resumed download") }
                    continue
                }
                if response.status == 404 || response.status == 403 { return nil }
                if response.status < 500 || attempt >= attempts {
                    throw ArchiveError("\(head ? "HEAD" : "GET") \(path) answered \(response.status)")
                }
            } catch let error as HTTPTransportError where error.kind == .connect || error.kind == .tls {
                if unreachable.set() {
                    logger.warning("the archive host cannot be reached; this run reads no archive file", metadata: [
                        "archive_url": "\(URLCredentials.redacted(baseURL))", "error": "\(error)",
                    ])
                }
                throw error
            } catch let error as HTTPTransportError where error.isRetryable {
                if let file, let (onDisk, tag) = Self.resumePoint(after: error, in: file), resumes < Self.maxResumes {
                    // What arrived stays; the rest is asked for. Bytes gained this time make the attempt free.
                    if onDisk > resumeFrom && (error.partial?.status == 200 || etag == tag) { attempt = 0 }
                    (resumeFrom, etag) = (onDisk, tag)
                    resumes += 1
                    logger.info("archive download cut off; resuming", metadata: ["path": "\(path)", "from_byte": "\(onDisk)", "error": "\(error)"])
                } else {
                    (resumeFrom, etag) = (0, nil)
                    logger.debug("archive download failed; retrying", metadata: ["path": "\(path)", "error": "\(error)"])
                }
                if attempt >= attempts { throw error }
            }
            try await clock.sleep(until: clock.now() + Int64(200 << min(attempt, 5)))
        }
    }

    /// The first byte of a `Content-Range: bytes FIRST-LAST/SIZE`.
    static func rangeStart(_ header: String?) -> Int? {
        guard let header, header.hasPrefix("bytes ") else { return nil }
        return header.dropFirst(6).split(separator: "-").first.flatMap { Int($0) }
    }

    /// Resumes of one download at most: a host that cuts every transfer is not followed a few bytes at a time forever.
    static let maxResumes = 50

    /// Where a download cut off mid-body can go on from, and the ETag to check it against: the bytes on disk, when the
    /// answer was a 200 or 206 naming an ETag and byte ranges; nil where it must start over.
    static func resumePoint(after error: HTTPTransportError, in file: String) -> (Int, String)? {
        guard let partial = error.partial, partial.status == 200 || partial.status == 206, let tag = partial.headers["etag"],
              partial.headers["accept-ranges"]?.lowercased() == "bytes", let onDisk = size(of: file), onDisk > 0 else { return nil }
        return (onDisk, tag)
    }

    static func size(of path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    /// A HEAD for the file (no weight: the archive host is not Binance's API): its validators, or nil when it is not
    /// there (404/403). Throws when the host cannot answer.
    public func head(_ file: ArchiveFile) async throws -> ArchiveFacts? {
        guard let response = try await request(file.path, head: true) else { return nil }
        return ArchiveFacts(headers: response.headers, size: response.headers["content-length"].flatMap { Int($0) })
    }

    public func size(of file: ArchiveFile) async -> ArchiveSize {
        if unreachable.isSet { return .unreachable }
        do {
            guard let response = try await request(file.path, head: true) else { return .absent }
            return .bytes(response.headers["content-length"].flatMap { Int($0) })
        } catch {
            return unreachable.isSet ? .unreachable : .bytes(nil)
        }
    }

    /// The file's rows in key order. Real files have arrived out of order and with repeats under a matching CHECKSUM
    /// (binance-public-data #339, #191, #203): repeats are dropped as they come; a row whose key is below one already
    /// delivered makes the file be read once more whole (only that file's rows are then held), and the rows not yet
    /// delivered follow, sorted.
    public func read<Row>(_ file: ArchiveFile, format: ArchiveRowFormat<Row>, deliver: ([Row]) async throws -> Void) async throws -> ArchiveRead {
        if unreachable.isSet { return .unreachable }
        await slots.acquire()
        defer { Task { await slots.release() } }
        let zip: any ZipSource
        var facts = ArchiveFacts()
        // The download goes to a file of its own under the spool folder, read from there and removed when done; where
        // no file can be made there (a read-only filesystem), it is held in memory.
        let spool = spoolFile(for: file)
        defer { if let spool { unlink(spool) } }
        do {
            guard let checksumResponse = try await request(file.checksumPath) else { return .absent }
            let checksum = try ArchiveChecksum(parsing: String(decoding: checksumResponse.body, as: UTF8.self), fileName: file.fileName)
            var verified: (any ZipSource)?
            for _ in 0..<2 {
                // The SHA-256 is computed as the bytes arrive (a resumed download continues it); read back from disk
                // only where the digest could not follow the transfer.
                let digest = DownloadDigest()
                guard let response = try await request(file.path, into: spool, observer: digest) else { return .absent }
                facts = ArchiveFacts(headers: response.headers, size: spool.flatMap { Self.size(of: $0) } ?? response.body.count, sha256: checksum.sha256)
                if let spool {
                    if let hex = digest.hex() ?? SHA256.hex(fileAt: spool), checksum.matches(hex: hex) { verified = try ZipFile(path: spool); break }
                } else if checksum.matches(response.body) {
                    verified = response.body
                    break
                }
                logger.info("archive file does not match its CHECKSUM; downloading it again", metadata: ["file": "\(file.fileName)"])
            }
            guard let verified else { return .refused("\(file.fileName) does not match its CHECKSUM, twice") }
            zip = verified
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return unreachable.isSet ? .unreachable : .refused("\(file.fileName): \(error)")
        }
        // Only a verified download is unpacked.
        var delivered = 0
        var processed = 0  // accepted rows seen in file order, repeats included
        var seenWhenDelivered = 0  // `processed` when the last batch was delivered
        var last: Row?
        var straggler = false
        let streamed = try await Self.refusingOnFault(file) {
            let entry = try ZipArchive.EntryReader(source: zip)
            try Self.checkEntryName(entry.entry.name, of: file)
            var rows = format.reader(file.fileName)
            let position = rows.position
            var batch: [Row] = []
            func take(_ row: Row) throws {
                guard !straggler, try format.accept(row) else { return }
                if let last {
                    let (k, lastKey) = (format.key(row), format.key(last))
                    if k == lastKey {
                        guard row == last else {
                            throw ArchiveCSV.Invalid(file: file.fileName, line: position.line, reason: "two different rows for the key \(k)")
                        }
                        processed += 1
                        return
                    }
                    if k < lastKey {
                        straggler = true
                        return
                    }
                }
                processed += 1
                last = row
                batch.append(row)
            }
            while !straggler, let chunk = try entry.next(maxBytes: Self.chunkBytes) {
                var failure: (any Error)?
                try rows.feed(chunk) { row throws(ArchiveCSV.Invalid) in
                    guard failure == nil else { return }
                    do { try take(row) } catch { failure = error }
                }
                if let failure { throw failure }
                // A straggler in this chunk: the chunk's rows wait for the sorted pass, so none is taken for missing.
                if straggler { break }
                if !batch.isEmpty {
                    delivered += batch.count
                    do { try await deliver(batch) } catch { throw ArchiveDeliveryError(underlying: error) }
                    batch.removeAll(keepingCapacity: true)
                }
                seenWhenDelivered = processed
            }
            if !straggler {
                var failure: (any Error)?
                try rows.finish { row throws(ArchiveCSV.Invalid) in
                    guard failure == nil else { return }
                    do { try take(row) } catch { failure = error }
                }
                if let failure { throw failure }
                if !straggler && !batch.isEmpty {
                    delivered += batch.count
                    do { try await deliver(batch) } catch { throw ArchiveDeliveryError(underlying: error) }
                }
            }
            return .rows(delivered, facts)
        }
        guard case .rows = streamed, straggler else { return streamed }
        let sorted = try await readOutOfOrder(file, zip: zip, format: format, alreadySeen: seenWhenDelivered, delivered: delivered, deliver: deliver)
        if case .rows(let count, _) = sorted { return .rows(count, facts) }
        return sorted
    }

    /// The free bytes of the disk `folder` is on (for unprivileged users), nil where it cannot be asked.
    public static func freeBytes(under folder: String) -> Int? {
        var info = statvfs()
        guard statvfs(folder, &info) == 0 else { return nil }
        return Int(clamping: UInt64(info.f_bavail) &* UInt64(info.f_frsize))
    }

    /// `DIRECTORY/binance-extractor-spool`, the folder of this program's spool files.
    static func spoolFolder(_ spoolDirectory: String?) -> String? {
        spoolDirectory.map { ($0 as NSString).appendingPathComponent("binance-extractor-spool") }
    }

    /// Spool files a day old are what a killed process left (a live one removes its own once read): gone.
    public static func sweep(_ spoolDirectory: String?) {
        guard let folder = spoolFolder(spoolDirectory) else { return }
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] {
            let path = (folder as NSString).appendingPathComponent(name)
            if let modified = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified.timeIntervalSinceNow < -86_400 {
                try? fm.removeItem(atPath: path)
            }
        }
    }

    /// A new spool file's path for `file` (its folder made if missing), or nil where none can be made.
    func spoolFile(for file: ArchiveFile) -> String? {
        guard let folder = Self.spoolFolder(spoolDirectory) else { return nil }
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent("\(UUID().uuidString)-\(file.fileName)")
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        close(fd)
        return path
    }

    /// The one CSV inside `SYMBOL-1h-2026-10.zip` is `SYMBOL-1h-2026-10.csv` (binance-public-data's files, every
    /// dataset): an entry named for another symbol, interval or period is another file's rows under this file's name,
    /// whatever its CHECKSUM says, and the file is refused.
    static func checkEntryName(_ name: String, of file: ArchiveFile) throws {
        let expected = String(file.fileName.dropLast(4)) + ".csv"
        let base = name.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? name
        guard base == expected else {
            throw ArchiveError("the zip holds '\(name.prefix(200))', not \(expected): another file's rows under this name")
        }
    }

    /// The whole file, sorted and de-duplicated without holding it (`SortedRuns`: runs of 8 MiB sorted on the spool
    /// folder's disk, then merged); delivers the rows the streaming pass did not. The first `alreadySeen` accepted rows
    /// in file order were delivered, or were repeats of delivered ones: they are marked, and a key with a marked row
    /// is not delivered again. Two different rows under one key refuse the file, wherever they are.
    private func readOutOfOrder<Row>(_ file: ArchiveFile, zip: any ZipSource, format: ArchiveRowFormat<Row>, alreadySeen: Int, delivered: Int,
                                     deliver: ([Row]) async throws -> Void) async throws -> ArchiveRead {
        let folder = Self.spoolFolder(spoolDirectory) ?? NSTemporaryDirectory()
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let runs = SortedRuns(folder: folder)
        var rest = 0
        return try await Self.refusingOnFault(file) {
            // The entry's name was checked by the streaming pass that found the file out of order.
            let reader = try ZipArchive.EntryReader(source: zip)
            var rows = format.reader(file.fileName)
            var accepted = 0
            var failure: (any Error)?
            func spill(_ row: Row, _ line: UnsafeBufferPointer<UInt8>) {
                guard failure == nil else { return }
                do {
                    guard try format.accept(row) else { return }
                    try runs.add(key: format.key(row), marked: accepted < alreadySeen, line: line)
                    accepted += 1
                } catch { failure = error }
            }
            while let chunk = try reader.next(maxBytes: Self.chunkBytes) {
                try rows.feedLines(chunk) { row, line throws(ArchiveCSV.Invalid) in spill(row, line) }
                if let failure { throw failure }
                try Task.checkCancellation()
            }
            try rows.finishLines { row, line throws(ArchiveCSV.Invalid) in spill(row, line) }
            if let failure { throw failure }
            // The merge: lines come back in key order and are parsed again a batch at a time (a header line first, so
            // the reader takes the batch's first row as a row). A key's rows must agree; one marked row means done.
            var pending: [UInt8] = Array("header\n".utf8)
            var keys: [(Int64, Bool)] = []
            var group: (key: Int64, row: Row, delivered: Bool)?
            var batch: [Row] = []
            func parsePending() throws {
                var parser = format.reader(file.fileName)
                var parsed: [Row] = []
                try parser.feed(pending) { parsed.append($0) }
                try parser.finish { parsed.append($0) }
                guard parsed.count == keys.count else { throw ArchiveError("a sorted line did not parse back") }
                for (row, (key, marked)) in Swift.zip(parsed, keys) {
                    if let current = group, current.key == key {
                        guard row == current.row else {
                            throw ArchiveCSV.Invalid(file: file.fileName, line: 0, reason: "two different rows for the key \(key)")
                        }
                        group!.delivered = current.delivered || marked
                    } else {
                        if let done = group, !done.delivered { batch.append(done.row) }
                        group = (key, row, marked)
                    }
                }
                pending.removeAll(keepingCapacity: true)
                pending.append(contentsOf: "header\n".utf8)
                keys.removeAll(keepingCapacity: true)
            }
            let merger = try runs.merger()
            while try merger.read(upTo: 2000, { key, marked, line in
                pending.append(contentsOf: line)
                pending.append(0x0A)
                keys.append((key, marked))
            }) {
                try parsePending()
                if batch.count >= 2000 {
                    rest += batch.count
                    do { try await deliver(batch) } catch { throw ArchiveDeliveryError(underlying: error) }
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if let done = group, !done.delivered { batch.append(done.row) }
            if !batch.isEmpty {
                rest += batch.count
                do { try await deliver(batch) } catch { throw ArchiveDeliveryError(underlying: error) }
            }
            logger.info("archive file rows out of order; sorted", metadata: ["file": "\(file.fileName)", "sorted_runs": "\(runs.runCount)"])
            return .rows(delivered + rest)
        }
    }
}

extension ArchiveClient {
    /// Runs the reading of a verified file: an error of the file itself (a bad row, a damaged entry) refuses it, naming
    /// the fault; the caller's `deliver` errors and cancellation are thrown as they are.
    static func refusingOnFault(_ file: ArchiveFile, _ body: () async throws -> ArchiveRead) async throws -> ArchiveRead {
        do {
            return try await body()
        } catch let error as ArchiveDeliveryError {
            throw error.underlying
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return .refused("\(file.fileName): \(error)")
        }
    }
}

/// A download's SHA-256 as its body is written: from byte 0 on, continued by a resume that starts where the bytes
/// seen so far end; nil where it could not follow (a resume from elsewhere).
final class DownloadDigest: DownloadObserver, @unchecked Sendable {
    private let stream = SHA256.Stream()
    private var position = 0
    private var following = false

    func started(at offset: Int) {
        if offset == 0 {
            stream.reset()
            (position, following) = (0, true)
        } else if offset != position {
            following = false
        }
    }

    func received(_ bytes: UnsafeRawBufferPointer) {
        guard following else { return }
        stream.update(bytes)
        position += bytes.count
    }

    func hex() -> String? { following ? stream.finish() : nil }
}

/// An error of the caller's `deliver` (a failed write, cancellation), kept apart from the file's own faults.
struct ArchiveDeliveryError: Error {
    let underlying: any Error
}

/// A counting semaphore for tasks: `acquire` waits (without a thread) while every slot is taken.
actor FileSlots {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(_ count: Int) { free = max(1, count) }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() }
    }
}

/// A count shared by the copies of a client.
public final class SharedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    public var value: Int { lock.withLock { count } }
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
