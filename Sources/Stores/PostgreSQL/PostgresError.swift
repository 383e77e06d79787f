import StoreKit

/// An error from PostgreSQL or libpq, with the server's SQLSTATE where there is one.
///
/// Classified by SQLSTATE class (PostgreSQL documentation, Appendix A, "PostgreSQL Error Codes"); libpq reports a
/// failed connection by message only, so those are classified by what libpq says.
public struct PostgresError: StoreFailure, CustomStringConvertible, Sendable {
    /// Five characters (`23505`, `08006`), or empty for a failure with none (a connection attempt).
    public let sqlState: String
    public let message: String
    /// What the project was doing ("connecting to postgresql://u:***@db:5432/market", "writing klines_m1").
    public let context: String
    /// The connection could not be made or was lost: libpq's connection status said so.
    public let connectionBad: Bool

    public init(sqlState: String, message: String, context: String, connectionBad: Bool = false) {
        self.sqlState = sqlState
        self.message = message.trimmingCharacters(in: .whitespacesAndNewlines)
        self.context = context
        self.connectionBad = connectionBad
    }

    public var responseStatusCode: String? { sqlState.isEmpty ? nil : sqlState }

    public var description: String {
        "PostgreSQL error \(sqlState.isEmpty ? "" : sqlState + " ")while \(context): \(message)\(advice)"
    }

    /// Class 08 (connection exception), 57P01-57P03 (the server shutting down or starting), or a connection libpq
    /// reports as bad: the connection is gone or going, reconnecting may help. A connection never made for a reason
    /// a retry cannot fix (password, database, TLS) is configuration instead.
    public var isConnectionLost: Bool {
        if sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState) { return true }
        return connectionBad && !isConfiguration
    }

    /// 40001 (serialization failure), 40P01 (deadlock), 55P03 (lock not available): the transaction was rolled back.
    public var isTransientLock: Bool { ["40001", "40P01", "55P03"].contains(sqlState) }

    /// 28xxx (authorization), 3D000 (no such database), 42501 (insufficient privilege), and connection failures whose
    /// message names a password, role, database or TLS problem.
    public var isConfiguration: Bool {
        if sqlState.hasPrefix("28") || sqlState == "3D000" || sqlState == "42501" { return true }
        guard connectionBad else { return false }
        let text = message.lowercased()
        return ["password", "authentication", "does not exist", "role", "ssl", "certificate", "no pg_hba.conf entry", "could not translate host name"]
            .contains { text.contains($0) }
    }

    private var advice: String {
        if sqlState == "42501" {
            return " (the run needs SELECT, INSERT and UPDATE on its tables, and CREATE on the schema where a table is missing: GRANT them to the role in the database URL, or create the tables with a role that may)"
        }
        if isConfiguration { return " (check the user, password, database and sslmode in the database URL)" }
        if connectionBad { return " (is PostgreSQL running at that host and port, and may this machine reach it?)" }
        return ""
    }
}
