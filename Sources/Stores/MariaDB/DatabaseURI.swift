import StoreKit
import Foundation

/// Where the database is: `mysql://user:pass@host:port/db?options` or `mariadb://...` (the form `MYSQL_URI` has in
/// existing deployments), also as SQLAlchemy writes it (`mysql+pymysql://...`: the driver part names a Python
/// driver and means nothing here). The password never appears in `description`.
public struct DatabaseURI: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String
    public var host: String
    public var port: UInt32
    public var database: String
    /// How the connection uses TLS (`?ssl-mode=`); `.disabled` unless asked.
    public var tlsMode: TLSMode = .disabled
    /// PEM file of the certificate authorities the server's certificate must chain to (`?ssl-ca=`). With a
    /// verifying mode and no file, the system's store (`/etc/ssl/certs`) is used.
    public var tlsCAFile: String?

    /// `ssl-mode`, with MySQL's names and meanings (Connector/C has no such option; `MariaDBConnection` maps each to
    /// its `MYSQL_OPT_SSL_*` settings).
    public enum TLSMode: String, Sendable, CaseIterable {
        /// No TLS.
        case disabled = "DISABLED"
        /// TLS when the server offers it, unverified; plain otherwise.
        case preferred = "PREFERRED"
        /// TLS or no connection; the certificate is not verified.
        case required = "REQUIRED"
        /// TLS with a certificate that chains to the CA.
        case verifyCA = "VERIFY_CA"
        /// `VERIFY_CA`, and the certificate names the host connected to.
        case verifyIdentity = "VERIFY_IDENTITY"

        public var verifiesCertificate: Bool { self == .verifyCA || self == .verifyIdentity }
    }

    public init(user: String, password: String, host: String, port: UInt32 = 3306, database: String) {
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
    }

    /// The query options understood, each with its spellings: MySQL's (`ssl-mode`) and the underscore form Python
    /// URIs use (`ssl_mode`, `ssl_ca`).
    public static let queryOptions = ["ssl-mode", "ssl-ca", "charset"]

    /// Parses and checks a URI. Percent-escapes in the user and password are decoded (`p%40ss` is `p@ss`).
    public init(parsing text: String) throws(DatabaseURIError) {
        func fail(_ reason: String) -> DatabaseURIError { DatabaseURIError(reason: reason) }
        guard let schemeEnd = text.range(of: "://") else {
            throw fail("expected mysql://user:password@host:port/database")
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        // SQLAlchemy's `dialect+driver://`: the driver (pymysql, mysqldb, mariadbconnector, ...) is Python's business.
        let dialect = scheme.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? scheme
        guard dialect == "mysql" || dialect == "mariadb" else {
            throw fail("scheme '\(SecretSafe.token(scheme))' is not mysql:// or mariadb:// (mysql+DRIVER:// is read as mysql://)")
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
        var query: Substring = ""
        if let q = database.firstIndex(of: "?") {
            query = database[database.index(after: q)...]
            database = String(database[..<q])
        }
        guard !database.isEmpty else { throw fail("no database name after the host (…@host:3306/DATABASE)") }
        guard database.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "$" || $0 == "-" }) else {
            throw fail("the database name has characters other than letters, digits, '_', '$' and '-'")
        }
        var host = String(hostPort), port: UInt32 = 3306
        if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]") {
            host = String(hostPort[..<colon])
            let portText = hostPort[hostPort.index(after: colon)...]
            guard let p = UInt32(portText), (1...65535).contains(p) else { throw fail("port '\(SecretSafe.digits(portText))' is not a number from 1 to 65535 (a ':' after the host starts the port; is an '@' missing?)") }
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
        try readQuery(query, fail: fail)
    }

    /// `?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/db/ca.pem`: every option is known or the URI is refused, so a
    /// misspelt TLS setting never leaves a connection silently in plain text.
    private mutating func readQuery(_ query: Substring, fail: (String) -> DatabaseURIError) throws(DatabaseURIError) {
        var seen: Set<String> = []
        var mode: TLSMode?
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let rawName = String(parts[0])
            let name = rawName.lowercased().replacingOccurrences(of: "_", with: "-")
            guard let value = parts.count > 1 ? String(parts[1]).removingPercentEncoding : nil, !value.isEmpty else {
                throw fail("option '\(SecretSafe.token(rawName))' has no value (write NAME=VALUE)")
            }
            guard seen.insert(name).inserted else { throw fail("option '\(SecretSafe.token(rawName))' is given twice") }
            switch name {
            case "ssl-mode":
                guard let m = TLSMode(rawValue: value.uppercased().replacingOccurrences(of: "-", with: "_")) else {
                    throw fail("ssl-mode '\(SecretSafe.token(value))' is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                mode = m
            case "ssl-ca":
                tlsCAFile = value
            case "charset":
                // Connections are always utf8mb4; asking for it (as SQLAlchemy URIs often do) is fine, another is not.
                guard ["utf8mb4", "utf8", "utf8mb3"].contains(value.lowercased()) else {
                    throw fail("charset '\(SecretSafe.token(value))' is not supported: connections use utf8mb4; drop the option")
                }
            case "ssl":
                throw fail("option 'ssl' is not supported: use ssl-mode=REQUIRED (or VERIFY_CA / VERIFY_IDENTITY with ssl-ca=FILE)")
            default:
                throw fail("unknown option '\(SecretSafe.token(rawName))' in the query (a password belongs in the user part, user:PASSWORD@host): the options are \(Self.queryOptions.joined(separator: ", "))")
            }
        }
        // As MySQL's client does: a CA given without a mode means verifying against it.
        tlsMode = mode ?? (tlsCAFile != nil ? .verifyCA : .disabled)
    }

    /// `mysql://user:***@host:port/db`, with the TLS mode when there is one.
    public var description: String {
        "mysql://\(SecretSafe.token(user, maxLength: 64)):\(password.isEmpty ? "" : "***")@\(SecretSafe.token(host, maxLength: 253, also: ":[]")):\(port)/\(database)"
            + (tlsMode == .disabled ? "" : "?ssl-mode=\(tlsMode.rawValue)")
    }

    /// The same URI pointing at another database (tests make one per case).
    public func with(database: String) -> DatabaseURI {
        var copy = self
        copy.database = database
        return copy
    }
}

/// A MariaDB URL that cannot be used. The message never shows the text (it may hold a password anywhere): the
/// caller names where it was read.
public struct DatabaseURIError: Error, CustomStringConvertible, Equatable {
    public let reason: String
    public var description: String {
        "\(reason); expected mysql://user:password@host:3306/database"
    }
}
