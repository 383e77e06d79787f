import StoreKit
import CMariaDB
import Foundation

/// One MariaDB connection through Connector/C.
///
/// Not thread-safe by design: a `PooledConnection` owns it and calls it from its own thread only.
public final class MariaDBConnection {
    private var mysql: UnsafeMutablePointer<MYSQL>?
    private var statements: [String: UnsafeMutablePointer<MYSQL_STMT>] = [:]
    public let uri: DatabaseURI
    /// What `LOAD DATA LOCAL INFILE` may read on this connection: only the bytes `loadLocal` hands over.
    private let localInfile = LocalInfileSource()

    /// `mysql_library_init` is a macro; `mysql_server_init` must run once before any thread uses the library.
    private static let libraryInit: Void = { _ = mysql_server_init(0, nil, nil) }()

    /// Connects, in UTC and strict mode, with the URI's TLS mode. Throws `DatabaseError` (e.g. 1045 bad credentials,
    /// 2002 no server, 2026 TLS refused).
    public init(uri: DatabaseURI, connectTimeoutSeconds: UInt32 = 5, readTimeoutSeconds: UInt32 = 120) throws {
        _ = Self.libraryInit
        self.uri = uri
        do {
            mysql = try Self.connect(uri, mode: uri.tlsMode == .preferred ? .required : uri.tlsMode,
                                     connectTimeout: connectTimeoutSeconds, readTimeout: readTimeoutSeconds)
        } catch let error as DatabaseError where uri.tlsMode == .preferred && error.code == 2026 {
            // PREFERRED: TLS when the server offers it, plain text when it has none (CR_SSL_CONNECTION_ERROR).
            mysql = try Self.connect(uri, mode: .disabled, connectTimeout: connectTimeoutSeconds, readTimeout: readTimeoutSeconds)
        }
        // LOAD DATA LOCAL reads through this connection's own handler, which serves the batch `loadLocal` arms and
        // nothing else: a server asking for a file of this machine (the known LOCAL INFILE attack) gets an error.
        mysql_set_local_infile_handler(mysql, localInfileInit, localInfileRead, localInfileEnd, localInfileError,
                                       Unmanaged.passUnretained(localInfile).toOpaque())
        // Times are UTC everywhere (FROM_UNIXTIME/UNIX_TIMESTAMP follow the session zone); strict mode turns a value
        // that would be truncated into an error instead of a silent change.
        try execute("SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION'")
    }

    private static func connect(_ uri: DatabaseURI, mode: DatabaseURI.TLSMode, connectTimeout: UInt32,
                                readTimeout: UInt32) throws -> UnsafeMutablePointer<MYSQL> {
        guard let handle = mysql_init(nil) else {
            throw DatabaseError(code: 2008, message: "out of memory", context: "initialising Connector/C")
        }
        var connectTimeout = connectTimeout, readTimeout = readTimeout, writeTimeout = readTimeout
        mysql_optionsv_shim(handle, MYSQL_OPT_CONNECT_TIMEOUT, &connectTimeout)
        mysql_optionsv_shim(handle, MYSQL_OPT_READ_TIMEOUT, &readTimeout)
        mysql_optionsv_shim(handle, MYSQL_OPT_WRITE_TIMEOUT, &writeTimeout)
        _ = mysql_options(handle, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        var localInfile: UInt32 = 1
        mysql_optionsv_shim(handle, MYSQL_OPT_LOCAL_INFILE, &localInfile)
        setTLS(handle, mode, caFile: uri.tlsCAFile)
        guard mysql_real_connect(handle, uri.host, uri.user, uri.password, uri.database, uri.port, nil, 0) != nil else {
            let error = DatabaseError(code: mysql_errno(handle), message: SecretSafe.scrub(String(cString: mysql_error(handle)), password: uri.password, user: uri.user),
                                      context: "connecting to \(uri)")
            mysql_close(handle)
            throw error
        }
        // Connector/C 3.3 falls back to plain text when the server has no TLS, even with MYSQL_OPT_SSL_ENFORCE unless
        // the certificate is verified: whether TLS is really on is checked here, for every mode that requires it.
        if mode != .disabled && mode != .preferred && mysql_get_ssl_cipher(handle) == nil {
            mysql_close(handle)
            throw DatabaseError(code: 2026, message: "the server does not offer TLS", context: "connecting to \(uri)")
        }
        return handle
    }

    deinit { close() }

    /// `ssl-mode` in Connector/C's terms (it has no such option): any TLS setting makes it ask for TLS, and
    /// `MYSQL_OPT_SSL_ENFORCE` refuses a server without it. The chain is verified only when a CA file or folder
    /// is set (OpenSSL's SSL_VERIFY_PEER), the host name only with `MYSQL_OPT_SSL_VERIFY_SERVER_CERT`; both are set
    /// explicitly, as Connector/C 3.4 changed the default.
    private static func setTLS(_ handle: UnsafeMutablePointer<MYSQL>, _ mode: DatabaseURI.TLSMode, caFile: String?) {
        guard mode != .disabled else { return }
        var on: my_bool = 1, verifyHost: my_bool = mode == .verifyIdentity ? 1 : 0
        _ = mysql_options(handle, MYSQL_OPT_SSL_ENFORCE, &on)
        _ = mysql_options(handle, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verifyHost)
        guard mode.verifiesCertificate else { return }
        if let caFile {
            _ = mysql_options(handle, MYSQL_OPT_SSL_CA, caFile)
        } else {
            // The system's trust store (Debian's ca-certificates), as for any public certificate authority.
            _ = mysql_options(handle, MYSQL_OPT_SSL_CAPATH, "/etc/ssl/certs")
        }
    }

    public func close() {
        for (_, stmt) in statements { mysql_stmt_close(stmt) }
        statements.removeAll()
        if let mysql { mysql_close(mysql) }
        mysql = nil
    }

    private var handle: UnsafeMutablePointer<MYSQL> {
        get throws {
            guard let mysql else { throw DatabaseError(code: 2006, message: "connection closed", context: "using \(uri)") }
            return mysql
        }
    }

    private func error(_ context: String) -> DatabaseError {
        DatabaseError(code: mysql.map { mysql_errno($0) } ?? 2006,
                      message: mysql.map { String(cString: mysql_error($0)) } ?? "connection closed", context: context)
    }

    /// Runs a statement that returns no rows. Returns the affected row count.
    @discardableResult
    public func execute(_ sql: String) throws -> UInt64 {
        let h = try handle
        guard mysql_real_query(h, sql, UInt(sql.utf8.count)) == 0 else { throw error("running \(Self.summary(sql))") }
        // Drain any result set so the connection stays usable.
        if let result = mysql_store_result(h) { mysql_free_result(result) }
        return mysql_affected_rows(h)
    }

    /// Runs `LOAD DATA LOCAL INFILE …` (`sql`) with `data` as the file, inside a transaction: a row the server had to
    /// change or skip to store (LOCAL turns such errors into warnings) rolls the whole batch back and throws, as strict
    /// mode would for an INSERT; the error carries the first warning's code (1062: a row already stored). Returns the
    /// affected row count.
    @discardableResult
    public func loadLocal(_ sql: String, data: [UInt8]) throws -> UInt64 {
        let h = try handle
        try execute("START TRANSACTION")
        localInfile.arm(data)
        defer { localInfile.disarm() }
        do {
            guard mysql_real_query(h, sql, UInt(sql.utf8.count)) == 0 else { throw error("running \(Self.summary(sql))") }
            let affected = mysql_affected_rows(h)
            let warnings = mysql_warning_count(h)
            if warnings > 0 {
                // Level, Code, Message.
                let first = (try? query("SHOW WARNINGS LIMIT 1").first) ?? nil
                let code = first.flatMap { $0.count > 1 ? $0[1].flatMap { UInt32($0) } : nil } ?? 1265
                let text = first?.compactMap { $0 }.joined(separator: " ") ?? "?"
                throw DatabaseError(code: code, message: "\(warnings) warnings (\(text)): the batch was rolled back", context: "running \(Self.summary(sql))")
            }
            try execute("COMMIT")
            return affected
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }

    /// Runs a query and returns its rows as text (NULL as nil).
    public func query(_ sql: String) throws -> [[String?]] {
        let h = try handle
        guard mysql_real_query(h, sql, UInt(sql.utf8.count)) == 0 else { throw error("running \(Self.summary(sql))") }
        guard let result = mysql_store_result(h) else {
            if mysql_field_count(h) == 0 { return [] }
            throw error("reading the result of \(Self.summary(sql))")
        }
        defer { mysql_free_result(result) }
        let columns = Int(mysql_num_fields(result))
        var rows: [[String?]] = []
        while let row = mysql_fetch_row(result) {
            let lengths = mysql_fetch_lengths(result)!
            rows.append((0..<columns).map { c in
                row[c].map { String(decoding: UnsafeRawBufferPointer(start: $0, count: Int(lengths[c])), as: UTF8.self) }
            })
        }
        return rows
    }

    /// Quotes a string value through the library's escaping, for the text protocol.
    public func quote(_ value: String) throws -> String {
        let h = try handle
        let bytes = Array(value.utf8)
        var out = [CChar](repeating: 0, count: bytes.count * 2 + 1)
        let n = bytes.withUnsafeBufferPointer { src in
            src.withMemoryRebound(to: CChar.self) { mysql_real_escape_string(h, &out, $0.baseAddress, UInt(bytes.count)) }
        }
        return "'" + String(decoding: out[..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "'"
    }

    /// Executes `sql` once for every row of `columns` with Connector/C's array binding (`STMT_ATTR_ARRAY_SIZE`):
    /// one round trip and one statement for the whole batch, hence atomic under InnoDB's autocommit.
    /// Returns the affected row count (1 per insert, 2 per changed row, 0 per unchanged row).
    @discardableResult
    public func executeBatch(_ sql: String, columns: [BulkColumn], rows: Int) throws -> UInt64 {
        precondition(columns.allSatisfy { $0.count == rows })
        guard rows > 0 else { return 0 }
        let stmt = try prepared(sql)
        var arraySize = UInt32(rows)
        return try withBindings(columns) { binds in
            guard mysql_stmt_attr_set(stmt, STMT_ATTR_ARRAY_SIZE, &arraySize) == 0,
                  mysql_stmt_bind_param(stmt, binds) == 0 else { throw statementError(stmt, sql) }
            guard mysql_stmt_execute(stmt) == 0 else { throw statementError(stmt, sql) }
            return mysql_stmt_affected_rows(stmt)
        }
    }

    private func statementError(_ stmt: UnsafeMutablePointer<MYSQL_STMT>, _ sql: String) -> DatabaseError {
        let code = mysql_stmt_errno(stmt)
        let message = String(cString: mysql_stmt_error(stmt))
        // A statement whose connection broke must be prepared again on the next connection.
        if let key = statements.first(where: { $0.value == stmt })?.key, code >= 2000 {
            mysql_stmt_close(stmt)
            statements[key] = nil
        }
        return DatabaseError(code: code, message: message, context: "running \(Self.summary(sql))")
    }

    private func prepared(_ sql: String) throws -> UnsafeMutablePointer<MYSQL_STMT> {
        if let stmt = statements[sql] { return stmt }
        let h = try handle
        guard let stmt = mysql_stmt_init(h) else { throw error("preparing \(Self.summary(sql))") }
        guard mysql_stmt_prepare(stmt, sql, UInt(sql.utf8.count)) == 0 else {
            let e = DatabaseError(code: mysql_stmt_errno(stmt), message: String(cString: mysql_stmt_error(stmt)),
                                  context: "preparing \(Self.summary(sql))")
            mysql_stmt_close(stmt)
            throw e
        }
        statements[sql] = stmt
        return stmt
    }

    /// Lays the columns out as Connector/C's column-wise arrays: fixed-size values as a plain array, strings as an
    /// array of pointers plus an array of lengths, all alive for the duration of `body`.
    private func withBindings<T>(_ columns: [BulkColumn], _ body: (UnsafeMutablePointer<MYSQL_BIND>) throws -> T) throws -> T {
        var allocations: [UnsafeMutableRawPointer] = []
        let binds = UnsafeMutablePointer<MYSQL_BIND>.allocate(capacity: columns.count)
        binds.initialize(repeating: MYSQL_BIND(), count: columns.count)
        allocations.append(UnsafeMutableRawPointer(binds))
        defer { allocations.forEach { $0.deallocate() } }
        for (i, column) in columns.enumerated() {
            switch column {
            case .int64(let values):
                let buffer = UnsafeMutablePointer<Int64>.allocate(capacity: values.count)
                buffer.initialize(from: values, count: values.count)
                allocations.append(UnsafeMutableRawPointer(buffer))
                binds[i].buffer_type = MYSQL_TYPE_LONGLONG
                binds[i].buffer = UnsafeMutableRawPointer(buffer)
            case .string(let values):
                let total = values.reduce(0) { $0 + $1.utf8.count }
                let bytes = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, total))
                let pointers = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: values.count)
                let lengths = UnsafeMutablePointer<UInt>.allocate(capacity: values.count)
                allocations.append(UnsafeMutableRawPointer(bytes))
                allocations.append(UnsafeMutableRawPointer(pointers))
                allocations.append(UnsafeMutableRawPointer(lengths))
                var offset = 0
                for (r, value) in values.enumerated() {
                    var v = value
                    let n = v.withUTF8 { utf8 in
                        UnsafeMutableRawPointer(bytes + offset).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
                        return utf8.count
                    }
                    pointers[r] = bytes + offset
                    lengths[r] = UInt(n)
                    offset += n
                }
                binds[i].buffer_type = MYSQL_TYPE_STRING
                binds[i].buffer = UnsafeMutableRawPointer(pointers)
                binds[i].length = lengths
            }
        }
        return try body(binds)
    }

    static func summary(_ sql: String) -> String {
        let words = sql.split(separator: " ", maxSplits: 4).prefix(3).joined(separator: " ")
        return "'\(words) …'"
    }
}

/// One column of a batch: every row's value for one `?`.
public enum BulkColumn: Sendable {
    case int64([Int64])
    case string([String])

    var count: Int {
        switch self {
        case .int64(let v): v.count
        case .string(let v): v.count
        }
    }

    /// Batches of the same columns, one after the other: column i of the result holds column i of every part.
    static func concatenated(_ parts: [[BulkColumn]]) -> [BulkColumn] {
        guard let first = parts.first else { return [] }
        guard parts.count > 1 else { return first }
        return first.indices.map { i in
            switch first[i] {
            case .int64: .int64(parts.flatMap { if case .int64(let v) = $0[i] { v } else { [Int64]() } })
            case .string: .string(parts.flatMap { if case .string(let v) = $0[i] { v } else { [String]() } })
            }
        }
    }
}

/// `mysql_optionsv` is variadic; `mysql_options` takes the value as `const void *`, which is what we need here.
@inline(__always)
private func mysql_optionsv_shim(_ mysql: UnsafeMutablePointer<MYSQL>, _ option: mysql_option, _ value: UnsafeMutablePointer<UInt32>) {
    _ = mysql_options(mysql, option, value)
}

/// The bytes one `LOAD DATA LOCAL INFILE` statement reads, armed for that statement only.
final class LocalInfileSource {
    private(set) var data: [UInt8] = []
    private(set) var offset = 0
    private(set) var armed = false

    func arm(_ bytes: [UInt8]) { (data, offset, armed) = (bytes, 0, true) }
    func disarm() { (data, offset, armed) = ([], 0, false) }

    /// Copies up to `count` bytes into `buffer`; 0 at the end.
    func read(into buffer: UnsafeMutablePointer<CChar>, count: Int) -> Int {
        let n = min(count, data.count - offset)
        guard n > 0 else { return 0 }
        data.withUnsafeBytes { UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
}

// Connector/C's LOCAL INFILE callbacks (mysql_set_local_infile_handler): the "file" is the armed batch, whatever name the
// statement (or a server) gives.
private let localInfileInit: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Int32 = {
    pointer, _, userdata in
    pointer?.pointee = userdata
    guard let userdata else { return 1 }
    return Unmanaged<LocalInfileSource>.fromOpaque(userdata).takeUnretainedValue().armed ? 0 : 1
}

private let localInfileRead: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, UInt32) -> Int32 = { userdata, buffer, length in
    guard let userdata, let buffer else { return -1 }
    return Int32(Unmanaged<LocalInfileSource>.fromOpaque(userdata).takeUnretainedValue().read(into: buffer, count: Int(length)))
}

private let localInfileEnd: @convention(c) (UnsafeMutableRawPointer?) -> Void = { _ in }

private let localInfileError: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, UInt32) -> Int32 = { _, message, length in
    let text = "LOAD DATA LOCAL reads only this program's own batches, never a file"
    if let message, length > 0 {
        let bytes = Array(text.utf8.prefix(Int(length) - 1))
        for (i, byte) in bytes.enumerated() { message[i] = CChar(bitPattern: byte) }
        message[bytes.count] = 0
    }
    return 2068  // CR_LOAD_DATA_LOCAL_INFILE_REJECTED
}
