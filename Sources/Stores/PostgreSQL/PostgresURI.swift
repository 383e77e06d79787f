import Foundation
import StoreKit

/// Where a PostgreSQL database is, in libpq's URI form (PostgreSQL documentation, "Connection URIs"):
/// `postgresql://user:password@host:5432/database?sslmode=verify-full&sslrootcert=/ca.pem` (`postgres://` too).
/// The options a deployment needs are accepted; any other is refused with its name. The password never appears in
/// `description`.
public struct PostgresURI: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String
    public var host: String
    public var port: Int
    public var database: String
    /// Query options, by libpq keyword, values decoded.
    public var options: [String: String]

    /// libpq's `sslmode` values.
    public static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
    /// The query options accepted.
    public static let optionNames = ["sslmode", "sslrootcert", "connect_timeout", "application_name"]

    public init(user: String, password: String, host: String, port: Int = 5432, database: String, options: [String: String] = [:]) {
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        self.options = options
    }

    public init(parsing text: String) throws(PostgresURIError) {
        func fail(_ reason: String) -> PostgresURIError { PostgresURIError(reason: reason) }
        guard let schemeEnd = text.range(of: "://") else { throw fail("expected postgresql://user:password@host:5432/database") }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgresql" || scheme == "postgres" else {
            throw fail("scheme '\(SecretSafe.token(scheme))' is not postgresql:// or postgres://")
        }
        var rest = text[schemeEnd.upperBound...]
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var userInfo: Substring = ""
        if let at = rest.lastIndex(of: "@") {
            userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw fail("no database name after the host (…@host:5432/DATABASE)") }
        let hostPort = rest[..<slash]
        guard let database = String(rest[rest.index(after: slash)...]).removingPercentEncoding, !database.isEmpty else {
            throw fail("no database name after the host (…@host:5432/DATABASE)")
        }
        var host = String(hostPort), port = 5432
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw fail("an IPv6 host must be written [::1]") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65_535).contains(p) else { throw fail("port '\(SecretSafe.digits(after.dropFirst()))' is not 1-65535") }
                port = p
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            guard let p = Int(hostPort[hostPort.index(after: colon)...]), (1...65_535).contains(p) else {
                throw fail("port '\(SecretSafe.digits(hostPort[hostPort.index(after: colon)...]))' is not 1-65535 (a ':' after the host starts the port; is an '@' missing?)")
            }
            port = p
        }
        guard !host.isEmpty else { throw fail("no host (…@HOST:5432/database)") }
        let (userPart, passwordPart) = userInfo.firstIndex(of: ":").map { (userInfo[..<$0], userInfo[userInfo.index(after: $0)...]) }
            ?? (userInfo, "")
        guard let user = String(userPart).removingPercentEncoding, !user.isEmpty else { throw fail("no user (postgresql://USER:password@…)") }
        guard let password = String(passwordPart).removingPercentEncoding else { throw fail("the password's percent-escapes do not decode") }
        var options: [String: String] = [:]
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(kv[0])
            guard Self.optionNames.contains(key) else {
                throw fail("option '\(SecretSafe.token(key))' is not one this program passes to libpq (a password belongs in the user part, user:PASSWORD@host); use \(Self.optionNames.joined(separator: ", "))")
            }
            guard kv.count == 2, let value = String(kv[1]).removingPercentEncoding, !value.isEmpty else { throw fail("option '\(SecretSafe.token(key))' has no value") }
            switch key {
            case "sslmode" where !Self.sslModes.contains(value):
                throw fail("sslmode '\(SecretSafe.token(value))' is not one of \(Self.sslModes.joined(separator: ", "))")
            case "connect_timeout" where Int(value).map({ !(1...3_600).contains($0) }) ?? true:
                throw fail("connect_timeout '\(SecretSafe.digits(value))' is not a whole number of seconds from 1 to 3600")
            default: break
            }
            options[key] = value
        }
        self.init(user: user, password: password, host: host, port: port, database: database, options: options)
    }

    /// `postgresql://user:***@host:5432/database?sslmode=…`.
    public var description: String {
        let query = options.keys.sorted().map { "\($0)=\(SecretSafe.token(options[$0]!, maxLength: 200, also: "/"))" }
            .joined(separator: "&")
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "postgresql://\(SecretSafe.token(user, maxLength: 64)):***@\(SecretSafe.token(shownHost, maxLength: 253, also: ":[]")):\(port)/\(SecretSafe.token(database, maxLength: 64))"
            + (query.isEmpty ? "" : "?" + query)
    }

    /// libpq connection keywords and values (`PQconnectdbParams`). Sessions run in UTC with UTF-8 text.
    var connectionParameters: [(String, String)] {
        var out = [("host", host), ("port", String(port)), ("dbname", database), ("user", user), ("client_encoding", "UTF8"),
                   ("options", "-c TimeZone=UTC")]
        if !password.isEmpty { out.append(("password", password)) }
        out.append(("connect_timeout", options["connect_timeout"] ?? "5"))
        out.append(("application_name", options["application_name"] ?? "binance-extractor"))
        // libpq's own default is `prefer` (TLS if offered, unverified); a URI says what it wants, otherwise plain.
        out.append(("sslmode", options["sslmode"] ?? "disable"))
        if let ca = options["sslrootcert"] { out.append(("sslrootcert", ca)) }
        return out
    }
}

/// A database URL that cannot be used; the message shows it without its password.
public struct PostgresURIError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { "\(reason); expected postgresql://user:password@host:5432/database" }
}
