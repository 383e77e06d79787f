import BinanceAPI
import BinanceArchive
import FlyingFox
import FlyingSocks
import Foundation

/// An archive file binance-sim has written to disk, served from there (a month of a busy symbol's trades is a
/// gigabyte: it is never held in memory).
struct BuiltArchive: Sendable {
    let path: String
    let size: Int
    let sha256: String

    /// The ETag S3 sends for it (data.binance.vision is an S3 bucket behind CloudFront); quoted, as HTTP writes it.
    var etag: String { "\"\(sha256.prefix(32))\"" }
}

extension ArchiveTree {
    /// Bumped whenever what `build` writes changes, so a cache folder kept between runs is not served stale.
    static let builderVersion = 1

    /// The zip of `file` under `folder`, written once (with its fault) and reused, also by a later run given the same
    /// folder: the name carries everything the bytes depend on. Nil where the bucket holds no such file.
    static func build(_ file: ArchiveFile, fault: ArchiveFault?, market: SimulatedMarket, now: Int64, folder: String) throws -> BuiltArchive? {
        // A mixed-up upload: the entry named for another symbol holds that symbol's rows.
        var source = file
        if case .entryNamed(let name) = fault, let other = name.split(separator: "-").first.flatMap({ try? Symbol(validating: String($0)) }) {
            source = ArchiveFile(market: file.market, dataset: file.dataset, symbol: other, period: file.period)
        }
        var symbolName = source.symbol.name
        if source.market == .coinm, case .priceKlines(.index, _) = source.dataset { symbolName += "_PERP" }
        let symbol = market.symbols[symbolName].map { "\($0)" } ?? "-"
        let faultTag = fault.map { "\($0)" } ?? "-"
        let key = SimulatedMarket.seed("\(builderVersion)|\(symbol)|\(faultTag)|\(market.outages)", source.path, 0)
        let path = (folder as NSString).appendingPathComponent(file.path.replacingOccurrences(of: "/", with: "_") + "-\(String(key, radix: 16))")
        if let built = try? String(contentsOfFile: path + ".sha256", encoding: .utf8), built.count == 64,
           let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int {
            return BuiltArchive(path: path, size: size, sha256: built)
        }
        guard let (header, rows) = lines(source, market: market, now: now) else { return nil }
        let partial = path + ".part-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: partial, contents: nil), let handle = FileHandle(forWritingAtPath: partial) else {
            throw SimulatorFileError("cannot write \(partial)")
        }
        defer { try? handle.close(); try? FileManager.default.removeItem(atPath: partial) }
        var entry = String(file.fileName.dropLast(4)) + ".csv"
        if case .entryNamed(let name) = fault { entry = name }
        // The fastest level: binance-sim must make a gigabyte file in about a minute; any level is the same DEFLATE.
        let writer = try ZipWriter(entryName: entry, level: 1) { try handle.write(contentsOf: $0) }
        writer.wrongCRC = fault == .badCRC
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        func put(_ line: String, newline: Bool = true) throws {
            buffer.append(contentsOf: line.utf8)
            if newline { buffer.append(0x0A) }
            if buffer.count >= 1 << 20 {
                try writer.write(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        var lineWriter = FaultyLines(first: header == nil ? 0 : 1, disordered: fault == .disordered, put: { try put($0) })
        if let header { try lineWriter.take(header) }
        var left = Int.max
        if case .incomplete(let keep) = fault { left = keep }
        var differing = 0
        if case .differs(let n) = fault { differing = n }
        // The field a `differs` file changes: a candle's volume, a trade's quantity, a metric's open interest.
        let field = if case .aggTrades = file.dataset { 2 } else if case .metrics = file.dataset { 2 } else { 5 }
        for row in rows {
            guard left > 0 else { break }
            left -= 1
            if differing > 0 {
                differing -= 1
                try lineWriter.take(Self.lengthened(row, field: field))
            } else {
                try lineWriter.take(row)
            }
        }
        try lineWriter.finish()
        if case .runawayLine(let bytes) = fault { try put(String(repeating: "7", count: bytes), newline: false) }
        try writer.write(buffer)
        try writer.finish()
        try handle.close()
        guard let sha256 = SHA256.hex(fileAt: partial) else { throw SimulatorFileError("cannot read \(partial) back") }
        // Only a whole file gets its final name (a killed simulator leaves a `.part-` file, never a short zip).
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: partial, toPath: path)
        try sha256.write(toFile: path + ".sha256", atomically: true, encoding: .utf8)
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
        return BuiltArchive(path: path, size: size, sha256: sha256)
    }
}

extension ArchiveTree {
    /// A CSV line with field `field` one digit longer (`12.5` -> `12.51`): still a valid row, no longer REST's.
    static func lengthened(_ line: String, field: Int) -> String {
        var fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard field < fields.count else { return line }
        fields[field] += fields[field].contains(".") ? "1" : ".1"
        return fields.joined(separator: ",")
    }
}

/// The `disordered` fault as lines stream by (binance-public-data #339, #191): every 50th row from the 6th swapped
/// with the one after it, and the row at every 97th place from the 4th written three times.
struct FaultyLines {
    let first: Int
    let disordered: Bool
    let put: (String) throws -> Void
    private var index = 0
    private var held: (line: String, at: Int)?

    init(first: Int, disordered: Bool, put: @escaping (String) throws -> Void) {
        self.first = first
        self.disordered = disordered
        self.put = put
    }

    mutating func take(_ line: String) throws {
        defer { index += 1 }
        guard disordered else { return try put(line) }
        if let (earlier, at) = held {
            held = nil
            try emit(line, at: at)
            try emit(earlier, at: index)
        } else if index >= first + 5 && (index - first - 5) % 50 == 0 {
            held = (line, index)
        } else {
            try emit(line, at: index)
        }
    }

    mutating func finish() throws {
        if let (line, at) = held { try emit(line, at: at) }
        held = nil
    }

    private func emit(_ line: String, at place: Int) throws {
        try put(line)
        if place >= first && (place - first) % 97 == 3 {
            try put(line)
            try put(line)
        }
    }
}

struct SimulatorFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A byte range of a file on disk, read as it is sent, with the archive faults that act in transit: a byte flipped
/// (`damaged`), or the connection dropped at a byte (`drop`).
struct FileBytes: AsyncBufferedSequence, Sendable {
    typealias Element = UInt8
    let path: String
    let range: Range<Int>
    var flip: Int?
    var dropAt: Int?

    struct AsyncIterator: AsyncBufferedIteratorProtocol {
        let handle: FileHandle?
        var position: Int
        let end: Int
        let flip: Int?
        let dropAt: Int?

        mutating func next() async throws -> UInt8? { try await nextBuffer(suggested: 1)?.first }

        mutating func nextBuffer(suggested count: Int) async throws -> [UInt8]? {
            if let dropAt, position >= dropAt { throw SimulatedConnectionDrop() }
            guard position < end, let handle else { return nil }
            var stop = Swift.min(end, position + Swift.max(count, 64 << 10))
            if let dropAt, dropAt > position { stop = Swift.min(stop, dropAt) }
            try handle.seek(toOffset: UInt64(position))
            guard var chunk = try handle.read(upToCount: stop - position).map({ [UInt8]($0) }), !chunk.isEmpty else {
                throw SimulatedConnectionDrop()
            }
            if let flip, (position..<(position + chunk.count)).contains(flip) { chunk[flip - position] ^= 0x5A }
            position += chunk.count
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: FileHandle(forReadingAtPath: path), position: range.lowerBound, end: range.upperBound, flip: flip, dropAt: dropAt)
    }
}

/// A `Range` header against a file of `size` bytes (RFC 9110 14.2): one `bytes=FIRST-[LAST]` or `bytes=-SUFFIX`
/// range. `.whole` for anything else (several ranges, other units), which a server may answer with 200;
/// `.unsatisfiable` (416) for a first byte at or past the end.
enum ByteRange: Equatable {
    case whole
    case part(Range<Int>)
    case unsatisfiable

    init(header: String?, size: Int) {
        guard let header = header?.trimmingCharacters(in: .whitespaces), header.hasPrefix("bytes="), !header.contains(",") else {
            self = .whole
            return
        }
        let spec = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2 else { self = .whole; return }
        if spec[0].isEmpty {
            guard let suffix = Int(spec[1]), suffix > 0 else { self = .whole; return }
            self = .part(max(0, size - suffix)..<size)
        } else {
            guard let first = Int(spec[0]), first >= 0 else { self = .whole; return }
            let last = spec[1].isEmpty ? Int.max : Int(spec[1])
            guard let last, last >= first else { self = .whole; return }
            guard first < size else { self = .unsatisfiable; return }
            self = .part(first..<(min(last, size - 1) + 1))
        }
    }
}
