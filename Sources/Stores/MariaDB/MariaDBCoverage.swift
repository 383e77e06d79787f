import StoreKit
import BinanceAPI

/// Coverage on MariaDB: aggregate queries the server answers from the primary keys (one `GROUP BY symbol` per table)
/// and, for holes, the gap filler's window query (`GapStore`).
public struct CoverageStore: CoverageReading {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    public var gaps: any GapStoring { GapStore(pool: pool) }

    public func existingTables() async throws -> Set<String> { try await SchemaMigrator(pool: pool).existingTables() }

    /// Counting needs only `symbol` and a time `open_time`: a table too narrow to be written exactly (a rounding
    /// DECIMAL, a DATETIME without fractions) is still counted.
    public func unreadable(_ table: KlineTable) async throws -> String? {
        let shape = try await TableShape.read(pool, table: table.name)
        guard shape.columns["symbol"] != nil else { return "table \(table.name) has no symbol column" }
        guard let time = shape.columns["open_time"] else { return "table \(table.name) has no open_time column" }
        guard ["datetime", "timestamp"].contains(time.dataType) else { return "table \(table.name): open_time is \(time.columnType), not a time" }
        return nil
    }

    public func spans(table: String, timeColumn: String, idColumn: String?, symbols: [Symbol]?) async throws -> [[String?]] {
        let ids = idColumn.map { ", MIN(`\($0)`), MAX(`\($0)`)" } ?? ""
        return try await databaseSpan(pool, "SELECT", table) {
            try await pool.withConnection { db in
                let filter = try symbols.map { "WHERE `symbol` IN (" + (try $0.map { try db.quote($0.name) }).joined(separator: ",") + ")" } ?? ""
                return try db.query("""
                    SELECT `symbol`, CAST(UNIX_TIMESTAMP(MIN(`\(timeColumn)`)) * 1000 AS SIGNED),
                           CAST(UNIX_TIMESTAMP(MAX(`\(timeColumn)`)) * 1000 AS SIGNED), COUNT(*)\(ids)
                    FROM `\(table)` \(filter) GROUP BY `symbol` ORDER BY `symbol`
                    """)
            }
        }
    }

    public func idJumps(table: String, symbols: [Symbol]?) async throws -> [[String?]] {
        try await databaseSpan(pool, "SELECT", table) {
            try await pool.withConnection { db in
                let filter = try symbols.map { "WHERE `symbol` IN (" + (try $0.map { try db.quote($0.name) }).joined(separator: ",") + ")" } ?? ""
                return try db.query("""
                    SELECT `symbol`, COUNT(*) FROM (
                      SELECT `symbol`, `agg_trade_id` - LAG(`agg_trade_id`) OVER (PARTITION BY `symbol` ORDER BY `agg_trade_id`) AS `step`
                      FROM `\(table)` \(filter)) AS w
                    WHERE `step` > 1 GROUP BY `symbol`
                    """)
            }
        }
    }
}
