import StoreKit

/// An error from MariaDB or Connector/C, with the server's error number.
public struct DatabaseError: StoreFailure, CustomStringConvertible, Sendable {
    public let code: UInt32
    public let message: String
    /// What the project was doing ("connecting to mysql://u:***@db:3306/market", "writing klines_m1").
    public let context: String

    public init(code: UInt32, message: String, context: String) {
        self.code = code
        self.message = message
        self.context = context
    }

    public var responseStatusCode: String? { "\(code)" }

    public var description: String { "MariaDB error \(code) while \(context): \(message)\(advice)" }

    /// CR_SERVER_GONE_ERROR (2006), CR_SERVER_LOST (2013), CR_CONNECTION_ERROR (2002), CR_CONN_HOST_ERROR (2003),
    /// CR_SERVER_LOST_EXTENDED (2055), ER_SERVER_SHUTDOWN (1053), ER_CONNECTION_KILLED (1927): the connection is gone
    /// or going; reconnecting may help.
    public var isConnectionLost: Bool { [1053, 1927, 2002, 2003, 2006, 2013, 2055].contains(code) }

    /// ER_LOCK_DEADLOCK (1213) and ER_LOCK_WAIT_TIMEOUT (1205): the transaction was rolled back; run it again.
    public var isTransientLock: Bool { code == 1213 || code == 1205 }

    /// ER_ACCESS_DENIED_ERROR (1045), ER_DBACCESS_DENIED_ERROR (1044), ER_BAD_DB_ERROR (1049), CR_UNKNOWN_HOST (2005):
    /// configuration, as PostgreSQL's "could not translate host name" is.
    /// Wrong credentials or database, or a missing privilege (1142 command denied on a table, 1227 a privilege the
    /// statement needs), or a TLS connection refused (CR_SSL_CONNECTION_ERROR 2026: no TLS on the server, a
    /// certificate that does not verify): fixing the configuration, not waiting, is what helps.
    public var isConfiguration: Bool { [1044, 1045, 1049, 1142, 1143, 1227, 2005, 2026].contains(code) }

    private var advice: String {
        switch code {
        case 1045, 1044: " (check the user and password in MYSQL_URI)"
        case 1049: " (create the database, or fix its name in MYSQL_URI)"
        case 2005: " (the host name in the database URL does not resolve: check its spelling, and in Kubernetes the Service name and namespace)"
        case 1142, 1143, 1227: " (the run needs SELECT, INSERT and UPDATE on its tables, and CREATE where a table is missing: GRANT them to the MYSQL_URI user, or run `binance-extractor migrate` as a user that may)"
        case 2002, 2003: " (is MariaDB running at that host and port, and may this machine reach it? In Kubernetes, the NetworkPolicy binance-extractor-database lets the jobs reach only the database destination it names (by default pods labelled app.kubernetes.io/name=mariadb in the namespace, port 3306): set yours in the overlay's destinations.yaml)"
        case 2026: " (TLS as asked by ssl-mode in MYSQL_URI failed: does the server have TLS, does ssl-ca hold the CA that signed its certificate, and, with VERIFY_IDENTITY, does the certificate name the host in the URI?)"
        default: ""
        }
    }
}
