import CZlib
#if canImport(Glibc)
import Glibc
#endif

/// The one entry of a Binance archive file (each `.zip` holds one CSV), read from the central directory and
/// inflated with zlib a piece at a time; the entry's CRC-32 and size are checked. ZIP64 is read: a busy symbol's
/// monthly aggTrades file unpacks to more than 4 GiB.
public enum ZipArchive {
    /// The most one entry may claim to unpack to (256 GiB): a sanity bound on a header, not a memory bound.
    public static let maxEntryBytes = 1 << 38

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let reason: String
        public var description: String { "not a readable zip file: \(reason)" }
    }

    /// Where the first (only) entry of a zip lies: read from the central directory, checked against the file's size.
    public struct Entry: Sendable, Equatable {
        public let name: String
        /// 0 (stored) or 8 (DEFLATE).
        public let method: Int
        public let crc: UInt32
        /// The entry's data within the zip, and the size it unpacks to.
        public let data: Range<Int>
        public let size: Int
    }

    public static func entry(of zip: [UInt8]) throws(Invalid) -> Entry { try entry(in: zip) }

    /// The entry of a zip read through `source` (a download held in memory, or a file on disk read where needed).
    public static func entry(in source: some ZipSource) throws(Invalid) -> Entry {
        let total = source.count
        // End of central directory: 22 bytes plus a comment of up to 65,535 bytes, at the end.
        guard total >= 22 else { throw Invalid(reason: "\(total) bytes") }
        let tailStart = max(0, total - 22 - 65_535)
        let tail = try source.bytes(tailStart..<total)
        func u16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        func u32(_ b: [UInt8], _ i: Int) -> Int { u16(b, i) | u16(b, i + 2) << 16 }
        /// An 8-byte field as Int (negative when past Int64.max: refused by the range checks that follow).
        func u64(_ b: [UInt8], _ i: Int) -> Int { Int(truncatingIfNeeded: UInt64(u32(b, i)) | UInt64(u32(b, i + 4)) << 32) }
        var eocd = -1
        var i = tail.count - 22
        while i >= 0 {
            if u32(tail, i) == 0x0605_4b50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw Invalid(reason: "no end of central directory") }
        var central = u32(tail, eocd + 16)
        var entries = u16(tail, eocd + 10)
        // A ZIP64 end of central directory locator sits just before the end record (APPNOTE 4.3.15); its record holds
        // the 8-byte count and offset that a file past 4 GiB cannot write in the end record (4.3.14).
        if eocd >= 20, u32(tail, eocd - 20) == 0x0706_4b50 {
            let locator = Array(tail[(eocd - 20)..<eocd])
            let at = u64(locator, 8)
            guard at >= 0, at <= total - 56 else { throw Invalid(reason: "ZIP64 end of central directory past the file's end") }
            let record = try source.bytes(at..<(at + 56))
            guard u32(record, 0) == 0x0606_4b50 else { throw Invalid(reason: "no ZIP64 end of central directory") }
            entries = u64(record, 32)
            central = u64(record, 48)
        }
        guard entries >= 1 else { throw Invalid(reason: "no entry") }
        guard central >= 0, central <= total - 46 else { throw Invalid(reason: "no central directory entry") }
        let header = try source.bytes(central..<(central + 46))
        guard u32(header, 0) == 0x0201_4b50 else { throw Invalid(reason: "no central directory entry") }
        let method = u16(header, 10), crc = UInt32(truncatingIfNeeded: u32(header, 16))
        var compressed = u32(header, 20), size = u32(header, 24)
        let nameLength = u16(header, 28), extraLength = u16(header, 30)
        var local = u32(header, 42)
        if compressed == 0xFFFF_FFFF || size == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
            // ZIP64 extended information (header 0x0001): the 8-byte original size, compressed size and local header
            // offset, each present only where its 4-byte field says 0xFFFFFFFF, in that order (APPNOTE 4.5.3).
            guard extraLength <= total - central - 46 - nameLength else { throw Invalid(reason: "truncated central directory") }
            let extra = try source.bytes((central + 46 + nameLength)..<(central + 46 + nameLength + extraLength))
            var at = 0
            var found = false
            while at + 4 <= extra.count {
                let id = u16(extra, at), length = u16(extra, at + 2)
                guard at + 4 + length <= extra.count else { break }
                if id == 1 {
                    var field = at + 4
                    func next() throws(Invalid) -> Int {
                        guard field + 8 <= at + 4 + length else { throw Invalid(reason: "short ZIP64 extra field") }
                        defer { field += 8 }
                        return u64(extra, field)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                    found = true
                    break
                }
                at += 4 + length
            }
            guard found else { throw Invalid(reason: "ZIP64 sizes without their extra field") }
            guard size >= 0, compressed >= 0, local >= 0 else { throw Invalid(reason: "ZIP64 sizes out of range") }
        }
        // No real file comes near this (a month of a busy symbol's trades unpacks to a few GB); a header claiming more
        // is damage. Nothing is held by size: the entry streams, and its unpacked bytes are counted against the claim.
        guard size <= Self.maxEntryBytes else { throw Invalid(reason: "entry claims \(size) bytes, more than \(Self.maxEntryBytes)") }
        guard nameLength <= total - central - 46 else { throw Invalid(reason: "truncated central directory") }
        let name = String(decoding: try source.bytes((central + 46)..<(central + 46 + nameLength)), as: UTF8.self)
        guard local <= total - 30 else { throw Invalid(reason: "no local header") }
        let localHeader = try source.bytes(local..<(local + 30))
        guard u32(localHeader, 0) == 0x0403_4b50 else { throw Invalid(reason: "no local header") }
        let start = local + 30 + u16(localHeader, 26) + u16(localHeader, 28)
        guard start <= total, compressed <= total - start else { throw Invalid(reason: "truncated entry data") }
        guard method == 0 || method == 8 else { throw Invalid(reason: "compression method \(method)") }
        guard method == 8 || compressed == size else { throw Invalid(reason: "a stored entry of \(compressed) bytes claims \(size)") }
        return Entry(name: name, method: method, crc: crc, data: start..<(start + compressed), size: size)
    }

    /// The name and contents of the first (only) entry, whole (tests and small files; a backfill streams with
    /// `EntryReader`).
    public static func firstEntry(of zip: [UInt8]) throws(Invalid) -> (name: String, bytes: [UInt8]) {
        let reader = try EntryReader(zip)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(reader.entry.size)
        while let chunk = try reader.next() { bytes.append(contentsOf: chunk) }
        return (reader.entry.name, bytes)
    }

    /// Unpacks the entry a chunk at a time, so a file is never held unpacked; the CRC-32 and the size are checked
    /// when the last chunk is read (a chunk is handed out before that check: a caller that must not act on a
    /// damaged entry verifies the download's SHA-256 first, as the archive client does).
    public final class EntryReader {
        /// Compressed bytes read from the source at a time.
        static let inputBytes = 256 << 10
        public let entry: Entry
        private let zip: any ZipSource
        private let stream: UnsafeMutablePointer<z_stream>?
        private var consumed = 0
        private var produced = 0
        private var crc: uLong = 0
        private var ended = false

        public convenience init(_ zip: [UInt8]) throws(Invalid) { try self.init(source: zip) }

        /// Reads the entry of `source`, compressed input a piece at a time (a spooled download is never held whole).
        public init(source zip: any ZipSource) throws(Invalid) {
            entry = try ZipArchive.entry(in: zip)
            self.zip = zip
            guard entry.method == 8 else {
                stream = nil
                return
            }
            // zlib keeps a pointer back to its z_stream: it must not move, so it lives on the heap.
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            guard inflateInit2_(stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                stream.deallocate()
                throw Invalid(reason: "zlib inflateInit2 failed")
            }
            self.stream = stream
        }

        deinit {
            if let stream {
                inflateEnd(stream)
                stream.deallocate()
            }
        }

        /// The next chunk of at most `maxBytes` unpacked bytes; nil once the entry is read whole and checked.
        public func next(maxBytes: Int = 1 << 18) throws(Invalid) -> [UInt8]? {
            guard !ended else { return nil }
            var chunk: [UInt8]
            if let stream {
                chunk = [UInt8](repeating: 0, count: max(maxBytes, 1))
                let data = entry.data
                // Compressed input a piece at a time (256 KiB): what zlib leaves unread is read again next time.
                let from = data.lowerBound + consumed
                let input = try zip.bytes(from..<min(from + Self.inputBytes, data.upperBound))
                let (status, wrote, left) = input.withUnsafeBufferPointer { input in
                    chunk.withUnsafeMutableBufferPointer { output -> (Int32, Int, Int) in
                        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                        stream.pointee.avail_in = uInt(input.count)
                        stream.pointee.next_out = output.baseAddress
                        stream.pointee.avail_out = uInt(output.count)
                        let status = CZlib.inflate(stream, Z_NO_FLUSH)
                        return (status, output.count - Int(stream.pointee.avail_out), Int(stream.pointee.avail_in))
                    }
                }
                consumed += input.count - left
                chunk.removeLast(chunk.count - wrote)
                switch status {
                case Z_STREAM_END: ended = true
                case Z_OK, Z_BUF_ERROR: break
                default: throw Invalid(reason: "damaged DEFLATE data (zlib status \(status))")
                }
                // No progress before the stream's end: the input is used up (truncated) or damaged.
                if !ended && wrote == 0 && (left == input.count || consumed >= data.count) {
                    throw Invalid(reason: "truncated DEFLATE data")
                }
            } else {
                let end = min(consumed + max(maxBytes, 1), entry.data.count)
                chunk = try zip.bytes((entry.data.lowerBound + consumed)..<(entry.data.lowerBound + end))
                consumed = end
                ended = consumed == entry.data.count
            }
            produced += chunk.count
            guard produced <= entry.size else { throw Invalid(reason: "entry holds more than the \(entry.size) bytes its header says") }
            crc = chunk.withUnsafeBufferPointer { CZlib.crc32(crc, $0.baseAddress, uInt($0.count)) }
            if ended {
                guard produced == entry.size else { throw Invalid(reason: "entry holds \(produced) bytes, its header says \(entry.size)") }
                guard UInt32(truncatingIfNeeded: crc) == entry.crc else { throw Invalid(reason: "CRC-32 mismatch in \(entry.name)") }
                if chunk.isEmpty { return nil }
            }
            return chunk
        }
    }

    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(CZlib.crc32(0, $0.baseAddress, uInt($0.count))) }
    }

    /// A zip file of one entry, DEFLATE-compressed, in memory (tests; binance-sim writes its files with `ZipWriter`).
    public static func make(name: String, bytes: [UInt8]) -> [UInt8] {
        var zip: [UInt8] = []
        do {
            let writer = try ZipWriter(entryName: name) { zip += $0 }
            try writer.write(bytes)
            try writer.finish()
        } catch {
            preconditionFailure("zlib failed in memory: \(error)")
        }
        return zip
    }
}

/// Where a zip's bytes are read from: a download in memory, or a file on disk (a spooled download), read where needed.
public protocol ZipSource {
    var count: Int { get }
    func bytes(_ range: Range<Int>) throws(ZipArchive.Invalid) -> [UInt8]
}

extension Array: ZipSource where Element == UInt8 {
    public func bytes(_ range: Range<Int>) throws(ZipArchive.Invalid) -> [UInt8] {
        guard range.lowerBound >= 0, range.upperBound <= count else { throw ZipArchive.Invalid(reason: "truncated") }
        return Array(self[range])
    }
}

/// A zip file on disk, read with pread(2) where needed: the whole file is never in memory.
public final class ZipFile: ZipSource {
    public let count: Int
    private let fd: Int32

    public init(path: String) throws(ZipArchive.Invalid) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ZipArchive.Invalid(reason: "cannot open \(path): errno \(errno)") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw ZipArchive.Invalid(reason: "cannot stat \(path): errno \(errno)")
        }
        count = Int(info.st_size)
    }

    deinit { close(fd) }

    public func bytes(_ range: Range<Int>) throws(ZipArchive.Invalid) -> [UInt8] {
        guard range.lowerBound >= 0, range.upperBound <= count else { throw ZipArchive.Invalid(reason: "truncated") }
        var out = [UInt8](repeating: 0, count: range.count)
        var done = 0
        while done < range.count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, range.count - done, off_t(range.lowerBound + done)) }
            guard n > 0 else { throw ZipArchive.Invalid(reason: "read failed at \(range.lowerBound + done): errno \(errno)") }
            done += n
        }
        return out
    }
}
