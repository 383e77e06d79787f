import CZlib

/// The one entry of a Binance archive file (each `.zip` holds one CSV), read from the central directory and
/// inflated with zlib; the entry's CRC-32 is checked. ZIP64 is not needed: no archive file comes near 4 GiB.
public enum ZipArchive {
    /// The most one entry may unpack to (1 GiB).
    public static let maxEntryBytes = 1 << 30

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let reason: String
        public var description: String { "not a readable zip file: \(reason)" }
    }

    /// The name and contents of the first (only) entry.
    public static func firstEntry(of zip: [UInt8]) throws(Invalid) -> (name: String, bytes: [UInt8]) {
        func u16(_ i: Int) -> Int { Int(zip[i]) | Int(zip[i + 1]) << 8 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        // End of central directory: 22 bytes plus a comment of up to 65,535 bytes, at the end.
        guard zip.count >= 22 else { throw Invalid(reason: "\(zip.count) bytes") }
        var eocd = -1
        var i = zip.count - 22
        while i >= max(0, zip.count - 22 - 65_535) {
            if u32(i) == 0x0605_4b50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw Invalid(reason: "no end of central directory") }
        guard u16(eocd + 10) >= 1 else { throw Invalid(reason: "no entry") }
        let central = u32(eocd + 16)
        guard central + 46 <= zip.count, u32(central) == 0x0201_4b50 else { throw Invalid(reason: "no central directory entry") }
        let method = u16(central + 10), crc = UInt32(truncatingIfNeeded: u32(central + 16))
        let compressed = u32(central + 20), size = u32(central + 24)
        let nameLength = u16(central + 28), local = u32(central + 42)
        guard compressed != 0xFFFF_FFFF, size != 0xFFFF_FFFF, local != 0xFFFF_FFFF else { throw Invalid(reason: "ZIP64 entry") }
        // The largest real file (a month of 1s spot klines) unpacks to well under this; a header claiming more is damage.
        guard size <= Self.maxEntryBytes else { throw Invalid(reason: "entry claims \(size) bytes, more than \(Self.maxEntryBytes)") }
        guard central + 46 + nameLength <= zip.count else { throw Invalid(reason: "truncated central directory") }
        let name = String(decoding: zip[(central + 46)..<(central + 46 + nameLength)], as: UTF8.self)
        guard local + 30 <= zip.count, u32(local) == 0x0403_4b50 else { throw Invalid(reason: "no local header") }
        let start = local + 30 + u16(local + 26) + u16(local + 28)
        guard start <= zip.count, compressed <= zip.count - start else { throw Invalid(reason: "truncated entry data") }
        let data = Array(zip[start..<(start + compressed)])
        let bytes: [UInt8]
        switch method {
        case 0: bytes = data
        case 8: bytes = try inflate(data, expectedSize: size)
        default: throw Invalid(reason: "compression method \(method)")
        }
        guard bytes.count == size else { throw Invalid(reason: "entry holds \(bytes.count) bytes, its header says \(size)") }
        guard crc32(bytes) == crc else { throw Invalid(reason: "CRC-32 mismatch in \(name)") }
        return (name, bytes)
    }

    /// Raw DEFLATE (no zlib header), as zip entries hold it.
    static func inflate(_ input: [UInt8], expectedSize: Int) throws(Invalid) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Invalid(reason: "zlib inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: max(expectedSize, 1))
        let status = finish(&stream, input, into: &output) { CZlib.inflate($0, Z_FINISH) }
        guard status == Z_STREAM_END else { throw Invalid(reason: "damaged DEFLATE data (zlib status \(status))") }
        output.removeLast(output.count - Int(stream.total_out))
        return output
    }

    /// Points `stream` at the whole of `input` and `output` and runs one zlib step (`inflate` or `deflate` with
    /// Z_FINISH) over them; returns zlib's status.
    private static func finish(_ stream: inout z_stream, _ input: [UInt8], into output: inout [UInt8],
                               _ step: (UnsafeMutablePointer<z_stream>) -> Int32) -> Int32 {
        var input = input
        return input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.next_in = inBuffer.baseAddress
                stream.avail_in = uInt(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = uInt(outBuffer.count)
                return step(&stream)
            }
        }
    }

    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(CZlib.crc32(0, $0.baseAddress, uInt($0.count))) }
    }

    /// A zip file of one entry, DEFLATE-compressed: what binance-sim serves and tests read.
    public static func make(name: String, bytes: [UInt8]) -> [UInt8] {
        let data = deflate(bytes)
        let crc = crc32(bytes)
        let nameBytes = Array(name.utf8)
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xffff) + le16((v >> 16) & 0xffff) }
        let crcBytes = le32(Int(crc))
        // Version 20, no flags, DEFLATE, DOS time and date 1980-01-01 00:00.
        let common = le16(20) + le16(0) + le16(8) + le16(0) + le16(0x21) + crcBytes + le32(data.count) + le32(bytes.count)
            + le16(nameBytes.count) + le16(0)
        let local = le32(0x0403_4b50) + common + nameBytes
        let central = le32(0x0201_4b50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le32(0) + le32(0) + nameBytes
        let end = le32(0x0605_4b50) + le16(0) + le16(0) + le16(1) + le16(1) + le32(central.count)
            + le32(local.count + data.count) + le16(0)
        return local + data + central + end
    }

    static func deflate(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        let initialised = deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                                        ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        precondition(initialised == Z_OK, "zlib deflateInit2 failed")
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))))
        let status = finish(&stream, input, into: &output) { CZlib.deflate($0, Z_FINISH) }
        precondition(status == Z_STREAM_END, "zlib deflate did not finish")
        output.removeLast(output.count - Int(stream.total_out))
        return output
    }
}
