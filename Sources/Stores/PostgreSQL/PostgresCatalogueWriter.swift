import BinanceAPI
import StoreKit

/// Any catalogue table's rows in PostgreSQL: COPY into the session's staging table, then one `INSERT … ON CONFLICT
/// (key) DO UPDATE`, in one transaction a batch; times as ISO 8601 UTC with milliseconds, decimals as their text.
public struct PostgresCatalogueWriter: CatalogueWriting {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    public func write(_ table: TableDefinition, rows: [[ColumnValue]]) async throws -> Int {
        guard !rows.isEmpty else { return 0 }
        for row in rows { try table.check(row) }
        var text: [UInt8] = []
        for row in rows {
            PostgresConnection.copyRow(row.map { value in
                switch value {
                case .text(let s): s
                case .time(let ms): UTCCalendar.iso8601(ms)
                case .decimal(let d): d.text
                case .integer(let n): String(n)
                case .boolean(let b): b ? "t" : "f"
                case .null: nil
                }
            }, into: &text)
        }
        let columns = table.written.map(\.name), key = table.key, name = table.name
        let accumulate = Set(table.written.filter(\.accumulates).map(\.name))
        let context = "writing \(rows.count) rows to \(name)"
        try await postgresSpan(pool, "INSERT", name, batchSize: rows.count) {
            try await pool.withConnection { [text] in
                try $0.upsert(into: name, columns: columns, key: key, copyText: text, context: context, accumulate: accumulate)
            }
        }
        return rows.count
    }
}
