import CZlib

/// Writes a zip of one DEFLATE entry as its bytes come, to any sink (memory, a file): what binance-sim serves,
/// whatever the size. The sizes and CRC-32 follow the data in a data descriptor (general purpose flag bit 3), so
/// nothing is written twice; an entry of 4 GiB or more, or a central directory past 4 GiB, is written as ZIP64
/// (APPNOTE.TXT 4.3.9, 4.4.3.2, 4.5.3, 4.3.14 and 4.3.15): a busy symbol's monthly aggTrades file unpacks to more.
public final class ZipWriter {
    public enum Failure: Error { case zlib(Int32) }

    private let name: [UInt8]
    private let sink: ([UInt8]) throws -> Void
    private let stream: UnsafeMutablePointer<z_stream>
    private var crc: uLong = 0
    private var size = 0
    private var compressed = 0
    private var finished = false
    /// A CRC-32 written into the headers instead of the data's (binance-sim's `bad-crc` fault).
    public var wrongCRC = false
    /// Writes the ZIP64 records whatever the size (tests read them without making a 4 GiB file).
    public var alwaysZIP64 = false

    /// `level`: zlib's 1 (fastest) to 9; Binance's files are ordinary DEFLATE, the level only changes sizes.
    public init(entryName: String, level: Int32 = Z_DEFAULT_COMPRESSION, sink: @escaping ([UInt8]) throws -> Void) throws {
        name = Array(entryName.utf8)
        self.sink = sink
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = deflateInit2_(stream, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deallocate()
            throw Failure.zlib(status)
        }
        // Version needed 4.5 (ZIP64), flag 3 (sizes after the data), DEFLATE, 1980-01-01 00:00, CRC and sizes zero.
        try sink(le32(0x0403_4b50) + le16(45) + le16(8) + le16(8) + le16(0) + le16(0x21) + le32(0) + le32(0) + le32(0)
                 + le16(name.count) + le16(0) + name)
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Bytes written so far for the header, the compressed data and (once finished) the rest.
    private var offset: Int { 30 + name.count + compressed }

    public func write(_ bytes: [UInt8]) throws {
        precondition(!finished, "ZipWriter.write after finish")
        crc = bytes.withUnsafeBufferPointer { CZlib.crc32(crc, $0.baseAddress, uInt($0.count)) }
        size += bytes.count
        try deflate(bytes, flush: Z_NO_FLUSH)
    }

    /// Ends the entry and writes the data descriptor, central directory and end records.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        try deflate([], flush: Z_FINISH)
        let crcField = UInt32(truncatingIfNeeded: crc) ^ (wrongCRC ? 0xFFFF_FFFF : 0)
        let large = alwaysZIP64 || size >= 0xFFFF_FFFF || compressed >= 0xFFFF_FFFF
        var descriptor = le32(0x0807_4b50) + le32(Int(crcField))
        descriptor += large ? le64(compressed) + le64(size) : le32(compressed) + le32(size)
        let centralOffset = offset + descriptor.count
        let extra = large ? le16(1) + le16(16) + le64(size) + le64(compressed) : []
        let central = le32(0x0201_4b50) + le16(45) + le16(45) + le16(8) + le16(8) + le16(0) + le16(0x21) + le32(Int(crcField))
            + (large ? le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) : le32(compressed) + le32(size))
            + le16(name.count) + le16(extra.count) + le16(0) + le16(0) + le16(0) + le32(0) + le32(0) + name + extra
        var end: [UInt8] = []
        let farCentral = alwaysZIP64 || centralOffset >= 0xFFFF_FFFF
        if farCentral {
            let record = centralOffset + central.count
            end += le32(0x0606_4b50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0) + le64(1) + le64(1)
                + le64(central.count) + le64(centralOffset)
            end += le32(0x0706_4b50) + le32(0) + le64(record) + le32(1)
        }
        end += le32(0x0605_4b50) + le16(0) + le16(0) + le16(1) + le16(1) + le32(central.count)
            + le32(farCentral ? 0xFFFF_FFFF : centralOffset) + le16(0)
        try sink(descriptor + central + end)
    }

    private func deflate(_ input: [UInt8], flush: Int32) throws {
        var input = input
        var output = [UInt8](repeating: 0, count: 256 << 10)
        try input.withUnsafeMutableBufferPointer { inBuffer in
            stream.pointee.next_in = inBuffer.baseAddress
            stream.pointee.avail_in = uInt(inBuffer.count)
            while true {
                let (status, wrote) = output.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = uInt(out.count)
                    let status = CZlib.deflate(stream, flush)
                    return (status, out.count - Int(stream.pointee.avail_out))
                }
                guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else { throw Failure.zlib(status) }
                if wrote > 0 {
                    compressed += wrote
                    try sink(Array(output[..<wrote]))
                }
                if flush == Z_FINISH ? status == Z_STREAM_END : (stream.pointee.avail_in == 0 && wrote < output.count) { break }
            }
        }
    }

    private func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff)] }
    private func le32(_ v: Int) -> [UInt8] { le16(v & 0xffff) + le16((v >> 16) & 0xffff) }
    private func le64(_ v: Int) -> [UInt8] { le32(v & 0xFFFF_FFFF) + le32((v >> 32) & 0xFFFF_FFFF) }
}
