import BinanceAPI
import StoreKit

/// Any catalogue table's rows in MariaDB: one `INSERT … ON DUPLICATE KEY UPDATE` a batch, with Connector/C array
/// binding; times bound as Unix milliseconds (`FROM_UNIXTIME(? * 0.001)`, exact), decimals as their text, NULL as an
/// empty text (or, for numbers, `Int64.min`) through `NULLIF`.
public struct MariaDBCatalogueWriter: CatalogueWriting {
    public let pool: ConnectionPool
    public init(pool: ConnectionPool) { self.pool = pool }

    /// NULL in a column bound as numbers (a value no time, id or flag has).
    static let nullNumber = Int64.min

    static func upsertSQL(_ table: TableDefinition) -> String {
        let columns = table.written
        let values = columns.map { column -> String in
            switch column.kind {
            case .time: column.nullable ? "FROM_UNIXTIME(NULLIF(?, \(Self.nullNumber)) * 0.001)" : "FROM_UNIXTIME(? * 0.001)"
            case .text, .decimal: column.nullable ? "NULLIF(?, '')" : "?"
            case .integer, .boolean: column.nullable ? "NULLIF(?, \(Self.nullNumber))" : "?"
            }
        }
        let updates = columns.filter { !table.key.contains($0.name) }.map {
            $0.accumulates ? "`\($0.name)` = `\($0.name)` + VALUES(`\($0.name)`)" : "`\($0.name)` = VALUES(`\($0.name)`)"
        }
        return "INSERT INTO `\(table.name)` (" + columns.map { "`\($0.name)`" }.joined(separator: ", ") + ") VALUES ("
            + values.joined(separator: ", ") + ")"
            + (updates.isEmpty ? " ON DUPLICATE KEY UPDATE `\(table.key[0])` = `\(table.key[0])`" : " ON DUPLICATE KEY UPDATE " + updates.joined(separator: ", "))
    }

    public func write(_ table: TableDefinition, rows: [[ColumnValue]]) async throws -> Int {
        guard !rows.isEmpty else { return 0 }
        for row in rows { try table.check(row) }
        let columns: [BulkColumn] = table.written.indices.map { i in
            switch table.written[i].kind {
            case .time, .integer, .boolean:
                return .int64(rows.map { row in
                    switch row[i] {
                    case .time(let ms): ms
                    case .integer(let n): n
                    case .boolean(let b): b ? 1 : 0
                    default: Self.nullNumber
                    }
                })
            case .text, .decimal:
                return .string(rows.map { row in
                    switch row[i] {
                    case .text(let text): text
                    case .decimal(let value): value.text
                    default: ""
                    }
                })
            }
        }
        try await pool.batch(Self.upsertSQL(table), columns: columns, rows: rows.count, operation: "INSERT", collection: table.name)
        return rows.count
    }
}
