import BuildInfo
import Logging
import PostgresStore
import MariaDBStore
import StoreKit

/// The database a run writes, chosen by its URL's scheme: `mysql://` or `mariadb://` (SQLAlchemy's `mysql+DRIVER://`
/// too) is MariaDB, `postgresql://` or `postgres://` is PostgreSQL. Shown without its password.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    case mariadb(DatabaseURI)
    case postgresql(PostgresURI)

    /// `source` names where the text was read (`DATABASE_URL`, `MYSQL_URI_FILE (/run/secrets/db)`, `--database-url`):
    /// a message names it and what is wrong, never the text, which may hold a password anywhere.
    init(parsing text: String, source: String = "the database URL") throws(ConfigurationError) {
        let scheme = text.range(of: "://").map { text[..<$0.lowerBound].lowercased() }
        if scheme == "postgresql" || scheme == "postgres" {
            do { self = .postgresql(try PostgresURI(parsing: text)) } catch { throw ConfigurationError("invalid database URL in \(source): \(error)") }
            return
        }
        do { self = .mariadb(try DatabaseURI(parsing: text)) } catch {
            guard let scheme, !scheme.hasPrefix("mysql"), !scheme.hasPrefix("mariadb") else {
                throw ConfigurationError("invalid database URL in \(source): \(error)")
            }
            throw ConfigurationError("invalid database URL in \(source): scheme '\(SecretSafe.token(scheme))' is not mysql://, mariadb://, "
                                     + "postgresql:// or postgres://")
        }
    }

    /// The MariaDB URI, for what only MariaDB holds so far.
    public var mariadb: DatabaseURI? {
        if case .mariadb(let uri) = self { return uri }
        return nil
    }

    public var password: String {
        switch self {
        case .mariadb(let uri): uri.password
        case .postgresql(let uri): uri.password
        }
    }

    /// `mysql` or `postgresql`, as `DB_ADAPTER` names them.
    var adapter: String {
        switch self {
        case .mariadb: "mysql"
        case .postgresql: "postgresql"
        }
    }

    public var description: String {
        switch self {
        case .mariadb(let uri): "\(uri)"
        case .postgresql(let uri): "\(uri)"
        }
    }
}

extension DatabaseLocation {
    /// The store at this location, with `size` connections.
    func open(size: Int, reconnectWindowMilliseconds: Int64 = 30_000, lockWaitTimeoutSeconds: Int? = nil, logger: Logger) -> any DataStore {
        switch self {
        case .mariadb(let uri):
            MariaDBStore(uri: uri, options: .init(size: size, reconnectWindowMilliseconds: reconnectWindowMilliseconds,
                                                  lockWaitTimeoutSeconds: lockWaitTimeoutSeconds),
                         extractorVersion: BuildInfo.version, logger: logger)
        case .postgresql(let uri):
            PostgresDataStore(uri: uri, size: size, faults: .init(reconnectWindowMilliseconds: reconnectWindowMilliseconds),
                              lockTimeoutSeconds: lockWaitTimeoutSeconds, logger: logger)
        }
    }
}
