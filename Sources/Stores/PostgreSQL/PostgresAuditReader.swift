import BinanceAPI
import StoreKit

/// What `audit` reads on PostgreSQL: stored rows by key range (the primary key's order), the archive ledger, the
/// sources.
public struct PostgresAuditReader: AuditReading {
    let pool: PostgresPool
    init(pool: PostgresPool) { self.pool = pool }

    static func id(_ name: String) -> String { PostgresConnection.identifier(name) }

    /// A column as text: times as Unix ms (`timestamptz` keeps microseconds; Binance's times are whole ms), booleans as 1
    /// or 0.
    static func select(_ column: TableDefinition.Column) -> String {
        switch column.kind {
        case .time: "(extract(epoch FROM \(id(column.name))) * 1000)::bigint"
        case .boolean: "\(id(column.name))::int"
        default: id(column.name)
        }
    }

    /// A bound on `column` as a parameter: a time through its Unix ms, a number as it is.
    static func bound(_ column: TableDefinition.Column?, _ n: Int) -> String {
        column?.kind == .time ? "to_timestamp($\(n)::numeric / 1000)" : "$\(n)::bigint"
    }

    public func rows(_ table: TableDefinition, symbol: String, key: String, after: Int64?, through: Int64, limit: Int) async throws -> [[String?]] {
        let columns = table.written.filter { $0.name != "symbol" }
        let keyColumn = table.ordered.first { $0.name == key }
        var parameters: [String?] = [symbol, String(through)]
        var lower = ""
        if let after {
            parameters.append(String(after))
            lower = " AND \(Self.id(key)) > \(Self.bound(keyColumn, 3))"
        }
        let sql = """
            SELECT \(columns.map(Self.select).joined(separator: ", ")) FROM \(Self.id(table.name))
            WHERE "symbol" = $1\(lower) AND \(Self.id(key)) <= \(Self.bound(keyColumn, 2))
            ORDER BY \(Self.id(key)) LIMIT \(max(1, limit))
            """
        return try await postgresSpan(pool, "SELECT", table.name) {
            try await pool.withConnection { [parameters] in try $0.query(sql, parameters, context: "reading \(table.name) to audit it") }
        }
    }

    public func ledgerFiles() async throws -> [[String?]] {
        let table = ArchiveLedgerTable.definition
        let sql = "SELECT \(table.written.map(Self.select).joined(separator: ", ")) FROM \(Self.id(table.name)) ORDER BY \"path\""
        return try await postgresSpan(pool, "SELECT", table.name) {
            try await pool.withConnection { try $0.query(sql, context: "reading the archive ledger") }
        }
    }

    public func sourceTotals() async throws -> [[String?]] {
        let sql = """
            SELECT "table_name", "symbol", "source", sum("row_count")::bigint, count(*) FROM \(Self.id(RowSourcesTable.name))
            GROUP BY "table_name", "symbol", "source" ORDER BY "table_name", "symbol", "source"
            """
        return try await postgresSpan(pool, "SELECT", RowSourcesTable.name) {
            try await pool.withConnection { try $0.query(sql, context: "reading the row sources") }
        }
    }
}
