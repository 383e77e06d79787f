import StoreKit
import CPostgres
import Foundation

/// One libpq connection. Every call blocks: use it only on the thread that owns it (`PostgresPool`).
///
/// Statements run with text results (PostgreSQL prints numeric values exactly, so decimals come back as the digits
/// stored); bulk rows go in through `COPY … FROM STDIN` in text format.
public final class PostgresConnection {
    private let connection: OpaquePointer
    public let uri: PostgresURI
    /// Staging tables this session has created (temporary tables live as long as the session).
    var stagingTables: Set<String> = []

    public init(uri: PostgresURI) throws(PostgresError) {
        self.uri = uri
        let parameters = uri.connectionParameters
        // Each keyword and value as a C string that lives until PQconnectdbParams returns.
        let keywords = parameters.map { strdup($0.0) }, values = parameters.map { strdup($0.1) }
        defer { (keywords + values).forEach { free($0) } }
        let made: OpaquePointer? = (keywords.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { k in
            (values.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { v in
                PQconnectdbParams(k.baseAddress, v.baseAddress, 0)
            }
        }
        guard let made else {
            throw PostgresError(sqlState: "", message: "libpq could not allocate a connection", context: "connecting to \(uri)", connectionBad: true)
        }
        guard PQstatus(made) == CONNECTION_OK else {
            let message = SecretSafe.scrub(String(cString: PQerrorMessage(made)), password: uri.password, user: uri.user)
            PQfinish(made)
            throw PostgresError(sqlState: "", message: message, context: "connecting to \(uri)", connectionBad: true)
        }
        // libpq prints the server's notices (`NOTICE: relation … already exists, skipping`) to stderr by default, where
        // they would break the run's one-JSON-object-per-line log; none of them is an error (errors come back as results).
        PQsetNoticeProcessor(made, { _, _ in }, nil)
        connection = made
    }

    deinit { PQfinish(connection) }

    /// Reads what the server sent (`PQconsumeInput`) and takes every notification libpq holds.
    func pollNotifications() -> [Notification] {
        guard PQconsumeInput(connection) == 1 else { return [] }
        var out: [Notification] = []
        while let notice = PQnotifies(connection) {
            out.append(Notification(channel: String(cString: notice.pointee.relname), payload: String(cString: notice.pointee.extra)))
            PQfreemem(notice)
        }
        return out
    }

    /// Whether libpq still holds the connection as usable.
    public var isUsable: Bool { PQstatus(connection) == CONNECTION_OK }

    /// Runs statements without parameters; returns the rows the last one affected.
    @discardableResult
    public func execute(_ sql: String, context: String? = nil) throws(PostgresError) -> Int {
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        try check(result, sql: sql, context: context)
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// Runs one statement with `$1`, `$2`, … bound to `parameters` (text; nil is NULL); returns the rows as text.
    public func query(_ sql: String, _ parameters: [String?] = [], context: String? = nil) throws(PostgresError) -> [[String?]] {
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        let result = copies.map { $0.map { UnsafePointer($0) } }.withUnsafeBufferPointer { values in
            PQexecParams(connection, sql, Int32(parameters.count), nil, values.baseAddress, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result, sql: sql, context: context)
        var rows: [[String?]] = []
        let (n, columns) = (PQntuples(result), PQnfields(result))
        rows.reserveCapacity(Int(n))
        for r in 0..<n {
            rows.append((0..<columns).map { c in PQgetisnull(result, r, c) == 1 ? nil : String(cString: PQgetvalue(result, r, c)) })
        }
        return rows
    }

    /// `COPY table (columns) FROM STDIN` with `text` in COPY's text format (tab-separated, one row a line, escaped
    /// with `copyField`): sent in chunks, then ended; an error of any row fails the whole COPY.
    public func copy(into table: String, columns: [String], text: [UInt8], context: String) throws(PostgresError) {
        let sql = "COPY \(Self.identifier(table)) (\(columns.map(Self.identifier).joined(separator: ", "))) FROM STDIN"
        let start = PQexec(connection, sql)
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            defer { PQclear(start) }
            try check(start, sql: sql, context: context)
            throw PostgresError(sqlState: "", message: "COPY did not start", context: context)
        }
        PQclear(start)
        var offset = 0
        var sent = true
        while offset < text.count && sent {
            let n = min(1 << 20, text.count - offset)
            sent = text.withUnsafeBufferPointer { buffer in
                buffer.baseAddress!.advanced(by: offset).withMemoryRebound(to: CChar.self, capacity: n) {
                    PQputCopyData(connection, $0, Int32(n)) == 1
                }
            }
            offset += n
        }
        // A failed send ends the COPY with an error of ours; the server's answer below says what happened.
        _ = PQputCopyEnd(connection, sent ? nil : "client could not send the rows")
        var failure: PostgresError?
        while let result = PQgetResult(connection) {
            if failure == nil {
                do throws(PostgresError) { try check(result, sql: sql, context: context) } catch { failure = error }
            }
            PQclear(result)
        }
        if let failure { throw failure }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws (and the connection is
    /// still there to roll back).
    public func transaction<T>(context: String, _ body: () throws -> T) throws -> T {
        try execute("BEGIN", context: context)
        do {
            let value = try body()
            try execute("COMMIT", context: context)
            return value
        } catch {
            if isUsable { _ = try? execute("ROLLBACK", context: context) }
            throw error
        }
    }

    private func check(_ result: OpaquePointer?, sql: String, context: String?) throws(PostgresError) {
        let status = result.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        guard status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_COPY_IN else { return }
        let sqlState = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) } ?? ""
        let message = result.flatMap { r -> String? in
            let text = String(cString: PQresultErrorMessage(r))
            return text.isEmpty ? nil : text
        } ?? String(cString: PQerrorMessage(connection))
        throw PostgresError(sqlState: sqlState, message: message, context: context ?? "running \(sql.prefix(60))",
                            connectionBad: PQstatus(connection) != CONNECTION_OK)
    }

    /// A quoted identifier (`"klines_m1"`); table and column names come from the project's own lists.
    public static func identifier(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    /// One field of COPY's text format: backslash, tab, newline and carriage return escaped (PostgreSQL
    /// documentation, "COPY", File Formats, Text Format); nil is `\N`.
    public static func copyField(_ value: String?, into out: inout [UInt8]) {
        guard let value else {
            out.append(contentsOf: [0x5C, 0x4E])
            return
        }
        for byte in value.utf8 {
            switch byte {
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x09: out.append(contentsOf: [0x5C, 0x74])
            case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: out.append(contentsOf: [0x5C, 0x72])
            default: out.append(byte)
            }
        }
    }
}
