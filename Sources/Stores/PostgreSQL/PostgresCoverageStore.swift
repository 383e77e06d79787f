import BinanceAPI
import StoreKit

/// Coverage on PostgreSQL: the same aggregate and window queries as on MariaDB, in PostgreSQL's SQL.
public struct PostgresCoverageStore: CoverageReading {
    public let store: PostgresDataStore
    public init(store: PostgresDataStore) { self.store = store }

    var pool: PostgresPool { store.pool }
    public var gaps: any GapStoring { PostgresGapStore(pool: pool) }

    public func existingTables() async throws -> Set<String> { try await store.existingTables() }

    /// Counting needs only `symbol` and a time `open_time`: a table too narrow to be written exactly (a short varchar,
    /// a rounding numeric) is still counted.
    public func unreadable(_ table: KlineTable) async throws -> String? {
        let columns = try await store.columns(of: table.name)
        guard columns["symbol"] != nil else { return "table \(table.name) has no symbol column" }
        guard let time = columns["open_time"]?[1] ?? nil else { return "table \(table.name) has no open_time column" }
        guard time.hasPrefix("timestamp") else { return "table \(table.name): open_time is \(time), not a timestamp" }
        return nil
    }

    /// `WHERE` for an optional symbol list bound as `$1` (a text array), and the parameters.
    private func filter(_ symbols: [Symbol]?) -> (String, [String?]) {
        guard let symbols else { return ("", []) }
        return ("WHERE \"symbol\" = ANY($1::text[])", ["{" + symbols.map(\.name).joined(separator: ",") + "}"])
    }

    public func spans(table: String, timeColumn: String, idColumn: String?, symbols: [Symbol]?) async throws -> [[String?]] {
        let ids = idColumn.map { ", min(\(PostgresConnection.identifier($0))), max(\(PostgresConnection.identifier($0)))" } ?? ""
        let time = PostgresConnection.identifier(timeColumn)
        let (whereClause, parameters) = filter(symbols)
        let sql = """
            SELECT "symbol", (extract(epoch FROM min(\(time))) * 1000)::bigint, (extract(epoch FROM max(\(time))) * 1000)::bigint, count(*)\(ids)
            FROM \(PostgresConnection.identifier(table)) \(whereClause) GROUP BY "symbol" ORDER BY "symbol"
            """
        return try await postgresSpan(pool, "SELECT", table) {
            try await pool.withConnection { try $0.query(sql, parameters, context: "reading the coverage of \(table)") }
        }
    }

    public func idJumps(table: String, symbols: [Symbol]?) async throws -> [[String?]] {
        let (whereClause, parameters) = filter(symbols)
        let sql = """
            SELECT "symbol", count(*) FROM (
              SELECT "symbol", "agg_trade_id" - lag("agg_trade_id") OVER (PARTITION BY "symbol" ORDER BY "agg_trade_id") AS "step"
              FROM \(PostgresConnection.identifier(table)) \(whereClause)) AS w
            WHERE "step" > 1 GROUP BY "symbol"
            """
        return try await postgresSpan(pool, "SELECT", table) {
            try await pool.withConnection { try $0.query(sql, parameters, context: "reading the trade ids of \(table)") }
        }
    }
}
