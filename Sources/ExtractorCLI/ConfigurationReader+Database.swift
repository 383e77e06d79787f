import Foundation
import BinanceAPI
import Clocks
import Logging
import Pipeline
import StoreKit
import Telemetry

/// Where the database is, and which store it is: read once, at start, from flags, variables and mounted files.
extension ConfigurationReader {
    /// The database: `--database-url` or `--mysql-uri` on the command line, else `DATABASE_URL` or `MYSQL_URI` (each
    /// also as `…_FILE`, a file holding it, as a mounted Secret); one of them. The scheme chooses the store, and
    /// `DB_ADAPTER` (or `--db-adapter`), when set, must agree with it. `warnings` gets what the run should log.
    static func database(_ options: DatabaseOptions, _ env: [String: String], warnings: inout [String]) throws(ConfigurationError) -> DatabaseLocation? {
        let mysqlFlag = try alias(options.mysqlURI, options.dbURI, option: "--mysql-uri", alias: "--db-uri")
        if mysqlFlag != nil && options.databaseURL != nil {
            throw ConfigurationError("--database-url and --mysql-uri both name a database: give one")
        }
        let flag = options.databaseURL.map { ("--database-url", $0) } ?? mysqlFlag.map { ("--mysql-uri", $0) }
        var text = flag?.1
        var source = flag?.0 ?? ""
        if text == nil {
            let found = [try environmentURL("DATABASE_URL", env), try environmentURL("MYSQL_URI", env)].compactMap { $0 }
            if found.count > 1 {
                throw ConfigurationError("both \(found[0].0) and \(found[1].0) name a database: keep one (DATABASE_URL takes mysql:// and postgresql:// URLs alike)")
            }
            text = found.first?.1
            source = found.first?.0 ?? ""
        }
        guard let text, !text.isEmpty else {
            try adapter(options.dbAdapter, env, location: nil)
            return nil
        }
        let location = try DatabaseLocation(parsing: text, source: source)
        try adapter(options.dbAdapter, env, location: location)
        if let flag, !location.password.isEmpty {
            warnings.append("a password given with \(flag.0) is visible to every user of this machine (ps, /proc): set DATABASE_URL or MYSQL_URI (or their _FILE forms) instead")
        }
        return location
    }

    /// `NAME`, or `NAME_FILE` read (a mounted Secret), or nil; both set is an error.
    static func environmentURL(_ name: String, _ env: [String: String]) throws(ConfigurationError) -> (String, String)? {
        let variable = env[name].flatMap { $0.isEmpty ? nil : $0 }
        let file = env[name + "_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if let variable {
            guard file == nil else {
                throw ConfigurationError("both \(name) and \(name)_FILE are set: keep one (\(name)_FILE=\(file ?? "") names a file holding the URL)")
            }
            return (name, variable)
        }
        guard let file else { return nil }
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw ConfigurationError("\(name)_FILE=\(file) cannot be read (\((error as NSError).localizedDescription)): mount the Secret there or unset the variable")
        }
        guard !text.isEmpty else {
            throw ConfigurationError("\(name)_FILE=\(file) is empty: it must hold a database URL, mysql://user:password@host:3306/database or postgresql://…")
        }
        return ("\(name)_FILE (\(file))", text)
    }

    /// `DB_ADAPTER` (petrosa-binance-data-extractor's store switch), or `--db-adapter` (the seed's CronJobs pass it),
    /// which wins: `mysql` (MariaDB) or `postgresql`, agreeing with the database URL when there is one; another store
    /// is refused rather than ignored, so a deployment never writes somewhere its operator did not mean.
    static func adapter(_ flag: String?, _ env: [String: String], location: DatabaseLocation?) throws(ConfigurationError) {
        guard let text = flag ?? env["DB_ADAPTER"], !text.isEmpty else { return }
        let name = flag != nil ? "--db-adapter \(text)" : "DB_ADAPTER=\(text)"
        let wanted: String
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "mysql", "mariadb": wanted = "mysql"
        case "postgresql", "postgres": wanted = "postgresql"
        case "mongodb", "mongo", "data_manager":
            throw ConfigurationError("\(name) is not supported by this build: it writes MariaDB/MySQL or PostgreSQL; use mysql or postgresql (or leave it out)")
        default:
            throw ConfigurationError("invalid \(flag != nil ? "--db-adapter '\(text)'" : "DB_ADAPTER='\(text)'"): use mysql (MariaDB/MySQL) or postgresql, or leave it out")
        }
        if let location, location.adapter != wanted {
            throw ConfigurationError("\(name) disagrees with the database URL \(location): make them name the same store (or leave the adapter out: the URL's scheme chooses)")
        }
    }
}
