import CCrypto
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 through OpenSSL's libcrypto (already on every machine that has libcurl built against OpenSSL).
public enum SHA256 {
    /// The digest of `bytes` as 64 lowercase hex digits.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digest = Stream()
        bytes.withUnsafeBytes { digest.update($0) }
        guard let hex = digest.finish() else { preconditionFailure("SHA-256 through libcrypto failed: libcrypto is broken") }
        return hex
    }
}

extension SHA256 {
    /// The digest of the file at `path`, read a MiB at a time; nil when it cannot be read.
    public static func hex(fileAt path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let digest = Stream()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            buffer.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        }
        return digest.finish()
    }

    /// A digest computed a piece at a time (a download hashed as its bytes arrive). Not thread-safe: one writer.
    public final class Stream: @unchecked Sendable {
        private let context: OpaquePointer?
        private var failed = false

        public init() {
            context = EVP_MD_CTX_new()
            failed = context == nil || EVP_DigestInit_ex(context, EVP_sha256(), nil) != 1
        }

        deinit { EVP_MD_CTX_free(context) }

        /// Starts over (a download that began again from its first byte).
        public func reset() {
            failed = context == nil || EVP_DigestInit_ex(context, EVP_sha256(), nil) != 1
        }

        public func update(_ bytes: UnsafeRawBufferPointer) {
            guard !failed, bytes.count > 0 else { return }
            failed = EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) != 1
        }

        /// The digest as 64 lowercase hex digits; nil when libcrypto failed.
        public func finish() -> String? {
            guard !failed else { return nil }
            var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
            var length: UInt32 = 0
            guard EVP_DigestFinal_ex(context, &digest, &length) == 1, length == 32 else { return nil }
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: digest.prefix(32).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0f)]] }, as: UTF8.self)
        }
    }
}

/// A `NAME.zip.CHECKSUM` file: `<sha256 hex>  NAME.zip` (two spaces, as `sha256sum` writes it; some files have no
/// trailing newline, binance-public-data #241).
public struct ArchiveChecksum: Sendable, Equatable {
    public let sha256: String

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let reason: String
        public var description: String { "\(file).CHECKSUM \(reason)" }
    }

    /// Parses the text, which must name `fileName`.
    public init(parsing text: String, fileName: String) throws(Invalid) {
        let line = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first.map(String.init) ?? ""
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 2 else { throw Invalid(file: fileName, reason: "is not '<sha256>  \(fileName)'") }
        let hex = fields[0].lowercased()
        guard hex.count == 64, hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw Invalid(file: fileName, reason: "holds no SHA-256 digest")
        }
        guard fields[1].hasSuffix(fileName), fields[1] == fileName || fields[1].hasSuffix("/" + fileName) || fields[1] == "*" + fileName else {
            throw Invalid(file: fileName, reason: "names another file: \(fields[1])")
        }
        sha256 = hex
    }

    /// Whether `bytes` are the file the CHECKSUM describes.
    public func matches(_ bytes: [UInt8]) -> Bool { SHA256.hex(bytes) == sha256 }

    /// Whether the file at `path` (a spooled download) is the file the CHECKSUM describes.
    public func matches(fileAt path: String) -> Bool { SHA256.hex(fileAt: path) == sha256 }
    public func matches(hex digest: String) -> Bool { digest == sha256 }

    /// The CHECKSUM text for `bytes` named `fileName`, as Binance writes it.
    public static func text(for bytes: [UInt8], fileName: String) -> String { "\(SHA256.hex(bytes))  \(fileName)\n" }
}
