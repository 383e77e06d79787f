import Foundation
import BlockingThreads
import BuildInfo
import CCurl
import CCurlShim

/// An `HTTPClient` on libcurl: a fixed set of workers, each a `BlockingThread` owning one easy handle.
///
/// A reused easy handle keeps its connection open between requests (HTTP keep-alive), so a worker pays the TCP
/// and TLS handshake once. Transfers block their worker thread, never Swift's cooperative pool.
public final class CurlHTTPClient: HTTPClient, @unchecked Sendable {
    public struct Options: Sendable {
        public var workers: Int
        public var connectTimeoutMilliseconds: Int
        public var totalTimeoutMilliseconds: Int
        public var maxBodyBytes: Int
        /// The most a download to a file may write (16 GiB: a month of a busy symbol's trades is gigabytes).
        public var maxDownloadBytes = 16 << 30
        public var userAgent: String
        /// TLS certificate and host name verification; off only for test endpoints, and the caller warns.
        public var verifyTLS: Bool

        public init(workers: Int = 4, connectTimeoutMilliseconds: Int = 5_000, totalTimeoutMilliseconds: Int = 30_000,
                    maxBodyBytes: Int = 64 << 20, userAgent: String = BuildInfo.userAgent, verifyTLS: Bool = true) {
            self.verifyTLS = verifyTLS
            self.workers = workers
            self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
            self.totalTimeoutMilliseconds = totalTimeoutMilliseconds
            self.maxBodyBytes = maxBodyBytes
            self.userAgent = userAgent
        }
    }

    private let options: Options
    private let pool: ResourcePool<CurlWorker>

    /// `curl_global_init` must run once before any handle exists and is not thread-safe.
    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init(options: Options = Options()) {
        _ = Self.globalInit
        self.options = options
        pool = ResourcePool((0..<max(1, options.workers)).map { CurlWorker(index: $0, options: options) })
    }

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let worker = try await pool.acquire()
        defer { pool.release(worker) }
        let transfer = Transfer(maxBodyBytes: options.maxBodyBytes)
        // A cancelled task (SIGTERM) aborts its transfer at libcurl's next progress callback instead of waiting
        // for the answer or the timeout.
        return try await withTaskCancellationHandler {
            try await worker.thread.run { try worker.perform(request, transfer: transfer) }
        } onCancel: {
            transfer.abort()
        }
    }

    /// The body goes to the file at `path` as it arrives (up to `maxDownloadBytes`), never into memory: from byte
    /// `offset` for a 206 answer, from the start (the file emptied) for any other. An announced length that does not
    /// fit on the file's disk is refused before a byte is written (`noSpace`).
    public func download(_ request: HTTPRequest, to path: String, from offset: Int, observer: (any DownloadObserver)?) async throws -> HTTPResponse {
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HTTPTransportError(kind: .other, detail: "cannot create \(path): errno \(errno)", url: request.url) }
        defer { close(fd) }
        let worker = try await pool.acquire()
        defer { pool.release(worker) }
        let transfer = Transfer(maxBodyBytes: options.maxDownloadBytes, file: fd, resumeAt: max(0, offset), observer: observer)
        return try await withTaskCancellationHandler {
            try await worker.thread.run { try worker.perform(request, transfer: transfer) }
        } onCancel: {
            transfer.abort()
        }
    }

    /// Ends the worker threads and frees their handles.
    public func shutdown() {
        for worker in pool.all { worker.close() }
    }
}

/// One libcurl easy handle and the thread that alone uses it.
final class CurlWorker: @unchecked Sendable {
    let thread: BlockingThread
    private var handle: UnsafeMutableRawPointer?
    private let options: CurlHTTPClient.Options

    init(index: Int, options: CurlHTTPClient.Options) {
        thread = BlockingThread(name: "http-\(index)")
        self.options = options
    }

    func close() {
        thread.enqueue { [self] in
            if let handle { curl_easy_cleanup(handle) }
            handle = nil
        }
        thread.shutdown()
    }

    /// Runs on `thread` only.
    func perform(_ request: HTTPRequest, transfer: Transfer) throws -> HTTPResponse {
        let url = request.url
        if transfer.isAborted { throw CancellationError() }
        if handle == nil { handle = curl_easy_init() }
        guard let handle else { throw HTTPTransportError(kind: .other, detail: "curl_easy_init failed", url: url) }
        let context = Unmanaged.passRetained(transfer)
        defer { context.release() }

        bx_curl_setopt_string(handle, CURLOPT_URL, url)
        // Header list and body must outlive curl_easy_perform.
        var headerList: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers { headerList = curl_slist_append(headerList, "\(name): \(value)") }
        defer { curl_slist_free_all(headerList) }
        bx_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
        let body = request.body
        switch request.method {
        case .get:
            // Also turns NOBODY off again after a HEAD on this handle (libcurl, CURLOPT_HTTPGET).
            bx_curl_setopt_long(handle, CURLOPT_HTTPGET, 1)
        case .head:
            bx_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
        case .post:
            bx_curl_setopt_long(handle, CURLOPT_NOBODY, 0)
            bx_curl_setopt_long(handle, CURLOPT_POST, 1)
            bx_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
            // COPYPOSTFIELDS copies the bytes into the handle, so nothing here has to stay alive.
            body.withUnsafeBytes { raw in
                _ = bx_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
        // Signals are not safe for multi-threaded processes; timeouts then rely on libcurl's own resolver.
        bx_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        // "" asks for every encoding libcurl was built with (gzip, deflate, ...), and decodes the answer. A download asks
        // for none: a resumed range counts the bytes as stored, not as decoded.
        bx_curl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, transfer.file >= 0 ? "identity" : "")
        bx_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, options.connectTimeoutMilliseconds)
        bx_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, request.timeoutMilliseconds ?? options.totalTimeoutMilliseconds)
        bx_curl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        // TLS verification stays on against Binance.
        bx_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0)
        bx_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0)
        bx_curl_setopt_string(handle, CURLOPT_USERAGENT, options.userAgent)
        bx_curl_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION, curlWriteBody)
        bx_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context.toOpaque())
        bx_curl_setopt_write_callback(handle, CURLOPT_HEADERFUNCTION, curlWriteHeader)
        bx_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context.toOpaque())
        bx_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
        bx_curl_setopt_xferinfo(handle, curlProgress)
        bx_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context.toOpaque())

        let code = curl_easy_perform(handle)
        guard code == CURLE_OK else {
            let detail = String(cString: curl_easy_strerror(code))
            // A failed transfer may leave the connection in an unknown state: start the next one afresh.
            curl_easy_cleanup(handle)
            self.handle = nil
            if code == CURLE_ABORTED_BY_CALLBACK { throw CancellationError() }
            if let (needed, free) = transfer.noSpace {
                throw HTTPTransportError(kind: .noSpace, detail: "the answer is \(needed) bytes and the disk its file is on has \(free) free", url: url)
            }
            let partial = transfer.status > 0 ? HTTPResponse(status: transfer.status, headers: transfer.headers, body: []) : nil
            throw HTTPTransportError(kind: Self.kind(of: code, transfer: transfer), detail: detail, url: url, partial: partial)
        }
        var status = 0
        bx_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.body)
    }

    static func kind(of code: CURLcode, transfer: Transfer) -> HTTPTransportError.Kind {
        if transfer.tooLarge { return .tooLarge }
        if transfer.writeFailed { return .other }
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: return .connect
        case CURLE_OPERATION_TIMEDOUT: return .timeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE: return .tls
        case CURLE_PARTIAL_FILE, CURLE_BAD_CONTENT_ENCODING: return .truncated
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING: return .reset
        default: return .other
        }
    }
}

/// What one transfer has received so far. Filled on the worker thread; `abort()` may come from any thread.
final class Transfer: @unchecked Sendable {
    var body: [UInt8] = []
    /// A download's file (the body goes there), or -1; bytes written to it.
    let file: Int32
    var written = 0
    /// Where a 206 answer's bytes go in the file (any other answer starts at 0); nil until the first body byte.
    let resumeAt: Int
    let observer: (any DownloadObserver)?
    var position: Int?
    /// The last status line's code.
    var status = 0
    /// Set when an announced length does not fit on the download file's disk: (length, free bytes).
    var noSpace: (Int, Int)?
    var writeFailed = false
    var headers: [String: String] = [:]
    var tooLarge = false
    let maxBodyBytes: Int
    private let lock = NSLock()
    private var aborted = false

    init(maxBodyBytes: Int, file: Int32 = -1, resumeAt: Int = 0, observer: (any DownloadObserver)? = nil) {
        self.maxBodyBytes = maxBodyBytes
        self.file = file
        self.resumeAt = resumeAt
        self.observer = observer
    }

    func abort() { lock.withLock { aborted = true } }
    var isAborted: Bool { lock.withLock { aborted } }
}

private let curlProgress: @convention(c) (UnsafeMutableRawPointer?, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> Int32 = {
    context, _, _, _, _ in
    Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue().isAborted ? 1 : 0
}

private let curlWriteBody: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let n = size * count
    if transfer.noSpace != nil { return 0 }
    if transfer.file >= 0 {
        if transfer.position == nil {
            // The first body byte: a 206 continues the file at the offset asked for, anything else replaces it.
            let start = transfer.status == 206 ? transfer.resumeAt : 0
            guard ftruncate(transfer.file, off_t(start)) == 0 else {
                transfer.writeFailed = true
                return 0
            }
            transfer.position = start
            transfer.observer?.started(at: start)
        }
        guard transfer.position! + n <= transfer.maxBodyBytes else {
            transfer.tooLarge = true
            return 0  // makes libcurl abort with CURLE_WRITE_ERROR
        }
        var done = 0
        while done < n {
            let w = pwrite(transfer.file, data! + done, n - done, off_t(transfer.position! + done))
            guard w > 0 else {
                transfer.writeFailed = true
                return 0
            }
            done += w
        }
        transfer.position! += n
        transfer.written += n
        transfer.observer?.received(UnsafeRawBufferPointer(start: data!, count: n))
        return n
    }
    guard transfer.body.count + n <= transfer.maxBodyBytes else {
        transfer.tooLarge = true
        return 0  // makes libcurl abort with CURLE_WRITE_ERROR
    }
    data!.withMemoryRebound(to: UInt8.self, capacity: n) {
        transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n))
    }
    return n
}

private let curlWriteHeader: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let n = size * count
    let line = data!.withMemoryRebound(to: UInt8.self, capacity: n) {
        String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        // A new status line (after a 100 Continue or a redirect): headers start over.
        transfer.headers.removeAll()
        transfer.status = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        transfer.headers[name] = value
        // Room for the whole body at once (an archive file is megabytes): growing by doubling would hold up to twice it.
        if transfer.file < 0, name == "content-length", let length = Int(value), length > 0, length <= transfer.maxBodyBytes {
            transfer.body.reserveCapacity(length)
        }
        // A download checks its disk first: a gigabyte file on a full spool would fail late, after minutes.
        if transfer.file >= 0, name == "content-length", (200..<300).contains(transfer.status), let length = Int(value), length > 0 {
            var info = statvfs()
            if fstatvfs(transfer.file, &info) == 0 {
                let free = Int(clamping: UInt64(info.f_bavail) &* UInt64(info.f_frsize))
                if free < length { transfer.noSpace = (length, free) }
            }
        }
    }
    return n
}
