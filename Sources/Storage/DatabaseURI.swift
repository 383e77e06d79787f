import Foundation

/// Where the database is: `mysql://user:pass@host:port/db` or `mariadb://...` (the form `MYSQL_URI` has in
/// existing deployments). The password never appears in `description`.
public struct DatabaseURI: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String
    public var host: String
    public var port: UInt32
    public var database: String

    public init(user: String, password: String, host: String, port: UInt32 = 3306, database: String) {
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
    }

    /// Parses and checks a URI. Percent-escapes in the user and password are decoded (`p%40ss` is `p@ss`).
    public init(parsing text: String) throws(DatabaseURIError) {
        let redacted = Self.redact(text)
        func fail(_ reason: String) -> DatabaseURIError { DatabaseURIError(redactedURI: redacted, reason: reason) }
        guard let schemeEnd = text.range(of: "://") else {
            throw fail("expected mysql://user:password@host:port/database")
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "mysql" || scheme == "mariadb" else {
            throw fail("scheme '\(scheme)' is not mysql:// or mariadb://")
        }
        var rest = text[schemeEnd.upperBound...]
        var userInfo: Substring = ""
        if let at = rest.lastIndex(of: "@") {
            userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw fail("no database name after the host (…@host:3306/DATABASE)") }
        let hostPort = rest[..<slash]
        var database = String(rest[rest.index(after: slash)...])
        if let q = database.firstIndex(of: "?") { database = String(database[..<q]) }
        guard !database.isEmpty else { throw fail("no database name after the host (…@host:3306/DATABASE)") }
        guard database.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "$" || $0 == "-" }) else {
            throw fail("database name '\(database)' has characters other than letters, digits, '_', '$' and '-'")
        }
        var host = String(hostPort), port: UInt32 = 3306
        if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]") {
            host = String(hostPort[..<colon])
            let portText = hostPort[hostPort.index(after: colon)...]
            guard let p = UInt32(portText), (1...65535).contains(p) else { throw fail("port '\(portText)' is not a number from 1 to 65535") }
            port = p
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw fail("no host name") }
        var user = "", password = ""
        if !userInfo.isEmpty {
            let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let u = String(parts[0]).removingPercentEncoding,
                  let p = parts.count > 1 ? String(parts[1]).removingPercentEncoding : "" else {
                throw fail("bad percent-escape in the user or password")
            }
            user = u
            password = p
        }
        guard !user.isEmpty else { throw fail("no user name (mysql://USER:password@host/db)") }
        self.init(user: user, password: password, host: host, port: port, database: database)
    }

    /// `mysql://user:***@host:port/db`.
    public var description: String {
        "mysql://\(user):\(password.isEmpty ? "" : "***")@\(host):\(port)/\(database)"
    }

    /// The same URI pointing at another database (tests make one per case).
    public func with(database: String) -> DatabaseURI {
        var copy = self
        copy.database = database
        return copy
    }

    /// Hides the password of a URI that may not even parse, for error messages: whatever stands between the first
    /// `:` after the scheme (or, with no `://`, after the start: `root:pw@host/db`, `mysql//root:pw@…`,
    /// `mysql:/root:pw@…`) and the last `@` is replaced. Without an `@` there is no password to hide.
    public static func redact(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return text }
        let start = text.range(of: "://").map { $0.upperBound < at ? $0.upperBound : text.startIndex } ?? text.startIndex
        guard let colon = text[start..<at].firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}

/// A `MYSQL_URI` that cannot be used.
public struct DatabaseURIError: Error, CustomStringConvertible, Equatable {
    public let redactedURI: String
    public let reason: String
    public var description: String {
        "invalid MYSQL_URI '\(redactedURI)': \(reason); expected mysql://user:password@host:3306/database"
    }
}
