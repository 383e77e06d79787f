import BinanceAPI
import StoreKit

/// What `audit` reads on MariaDB: stored rows by key range (the primary key's order), the archive ledger, the sources.
public struct AuditReader: AuditReading {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// A column as text: times as Unix ms (exact: `DATETIME(3)` has no more digits), booleans as 1 or 0.
    static func select(_ column: TableDefinition.Column) -> String {
        column.kind == .time ? "CAST(UNIX_TIMESTAMP(`\(column.name)`) * 1000 AS SIGNED)" : "`\(column.name)`"
    }

    /// A bound on `column`: a time compared through its Unix ms, a number as it is.
    static func bound(_ column: TableDefinition.Column?, _ value: Int64) -> String {
        column?.kind == .time ? "FROM_UNIXTIME(\(value) * 0.001)" : "\(value)"
    }

    public func rows(_ table: TableDefinition, symbol: String, key: String, after: Int64?, through: Int64, limit: Int) async throws -> [[String?]] {
        let columns = table.written.filter { $0.name != "symbol" }
        let keyColumn = table.ordered.first { $0.name == key }
        return try await databaseSpan(pool, "SELECT", table.name) {
            try await pool.withConnection { db in
                let lower = after.map { " AND `\(key)` > \(Self.bound(keyColumn, $0))" } ?? ""
                return try db.query("""
                    SELECT \(columns.map(Self.select).joined(separator: ", ")) FROM `\(table.name)`
                    WHERE `symbol` = \(try db.quote(symbol))\(lower) AND `\(key)` <= \(Self.bound(keyColumn, through))
                    ORDER BY `\(key)` LIMIT \(max(1, limit))
                    """)
            }
        }
    }

    public func ledgerFiles() async throws -> [[String?]] {
        let table = ArchiveLedgerTable.definition
        return try await databaseSpan(pool, "SELECT", table.name) {
            try await pool.withConnection { db in
                try db.query("SELECT \(table.written.map(Self.select).joined(separator: ", ")) FROM `\(table.name)` ORDER BY `path`")
            }
        }
    }

    public func sourceTotals() async throws -> [[String?]] {
        try await databaseSpan(pool, "SELECT", RowSourcesTable.name) {
            try await pool.withConnection { db in
                try db.query("""
                    SELECT `table_name`, `symbol`, `source`, CAST(SUM(`row_count`) AS SIGNED), COUNT(*) FROM `\(RowSourcesTable.name)`
                    GROUP BY `table_name`, `symbol`, `source` ORDER BY `table_name`, `symbol`, `source`
                    """)
            }
        }
    }
}
