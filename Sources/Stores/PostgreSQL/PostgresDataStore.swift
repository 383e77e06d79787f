import BinanceAPI
import Logging
import Storage

/// PostgreSQL as a `DataStore`: klines, their holes and the confirmed-gaps table. Funding rates and aggregate trades are
/// not held here yet: `PreparedTables` leaves them out and those commands refuse such a run with a configuration error
/// before preparing it.
public final class PostgresDataStore: DataStore {
    public let pool: PostgresPool

    public init(uri: PostgresURI, size: Int, faults: SessionPool<PostgresConnection>.Faults, logger: Logger) {
        pool = PostgresPool(uri: uri, size: size, faults: faults, logger: logger)
    }

    public var described: String { "\(pool.uri)" }

    public func shutdown() { pool.shutdown() }

    public func prepare(klineTables: [KlineTable], otherTables: [TableDefinition], dryRun: Bool, logger: Logger) async throws -> PreparedTables {
        let klines = PostgresKlineStore(pool: pool)
        var existing = try await existingTables()
        let missing = klineTables.filter { !existing.contains($0.name) }
        if dryRun {
            if !missing.isEmpty { logger.info("dry run: tables missing, treating them as empty", metadata: ["tables": "\(missing.map(\.name))"]) }
        } else {
            let created = missing.map(\.name) + (existing.contains(ConfirmedGapTable.name) ? [] : [ConfirmedGapTable.name])
            if !created.isEmpty {
                try await klines.create(missing)  // the confirmed-gaps table too, if missing
                logger.info("created missing tables", metadata: ["tables": "\(created.joined(separator: ","))"])
                existing = try await existingTables()
            }
            try await checkWritable(klineTables.map(\.name) + [ConfirmedGapTable.name])
        }
        for table in klineTables where existing.contains(table.name) { try await checkShape(table) }
        return PreparedTables(existing: existing, klines: klines, funding: nil, trades: nil, gaps: PostgresGapStore(pool: pool))
    }

    /// Tables of the session's schema (`search_path`'s first, usually `public`).
    func existingTables() async throws -> Set<String> {
        let rows = try await pool.withConnection {
            try $0.query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()", context: "listing tables")
        }
        return Set(rows.compactMap { $0.first ?? nil })
    }

    /// The privileges the run needs on each table, checked before anything is fetched (42501 otherwise, mid-run).
    func checkWritable(_ names: [String]) async throws {
        for name in names {
            let allowed = try await pool.withConnection {
                // One privilege a call: with several listed, has_table_privilege is true when any one of them is held.
                try $0.query("SELECT has_table_privilege(current_user, $1, 'SELECT') AND has_table_privilege(current_user, $1, 'INSERT') "
                             + "AND has_table_privilege(current_user, $1, 'UPDATE')", [PostgresConnection.identifier(name)],
                             context: "checking privileges on \(name)")
            }
            guard allowed.first?.first == "t" else {
                throw PostgresError(sqlState: "42501", message: "the role in the database URL may not SELECT, INSERT and UPDATE \(name)",
                                    context: "checking privileges on \(name)")
            }
        }
    }

    /// An existing kline table must hold the values exactly and upserts need its key: numeric(38,18) (or wider) for
    /// prices and quantities, timestamptz times, bigint trades, and a unique key on (symbol, open_time).
    func checkShape(_ table: KlineTable) async throws {
        let columns = try await pool.withConnection {
            try $0.query("""
                SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = $1
                """, [table.name], context: "reading the shape of \(table.name)")
        }
        let found = Dictionary(columns.compactMap { r in r[0].map { ($0, r) } }, uniquingKeysWith: { a, _ in a })
        func refuse(_ column: String, _ what: String, _ fix: String) -> SchemaError {
            SchemaError("table \(table.name) cannot take the rows exactly: column \(column) \(what); \(fix)")
        }
        for column in KlineTable.columns {
            guard let row = found[column] else { throw refuse(column, "is missing", "add it or drop the table so the run creates it") }
            let type = row[1] ?? ""
            if column == "symbol", !type.contains("char") && type != "text" {
                throw refuse(column, "is \(type), not text", "ALTER TABLE \(table.name) ALTER COLUMN symbol TYPE varchar(20)")
            }
            if column == "open_time" || column == "close_time", type != "timestamp with time zone" {
                throw refuse(column, "is \(type), not timestamptz",
                             "ALTER TABLE \(table.name) ALTER COLUMN \(column) TYPE timestamptz USING \(column) AT TIME ZONE 'UTC'")
            }
            if column == "number_of_trades", type != "bigint" && type != "numeric" {
                throw refuse(column, "is \(type), not bigint", "ALTER TABLE \(table.name) ALTER COLUMN number_of_trades TYPE bigint")
            }
            if KlineTable.decimalColumns.contains(column) {
                let precision = Int(row[2] ?? "") ?? 0, scale = Int(row[3] ?? "") ?? 0
                // Unconstrained numeric (no precision) holds every value exactly too.
                let exact = type == "numeric" && (row[2] == nil || (scale >= 18 && precision - scale >= 20))
                if !exact {
                    throw refuse(column, "is \(type)\(row[2].map { "(\($0),\(scale))" } ?? ""), which rounds or cannot hold Binance's values",
                                 "ALTER TABLE \(table.name) ALTER COLUMN \(column) TYPE numeric(38,18)")
                }
            }
        }
        let keys = try await pool.withConnection {
            try $0.query("""
                SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_index i
                CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = $1::regclass AND i.indisunique GROUP BY i.indexrelid
                """, [PostgresConnection.identifier(table.name)], context: "reading the keys of \(table.name)")
        }
        guard keys.contains(where: { $0.first == "symbol,open_time" }) else {
            throw SchemaError("table \(table.name) has no unique key on (symbol, open_time), which upserts rely on; "
                              + "ALTER TABLE \(table.name) ADD PRIMARY KEY (symbol, open_time)")
        }
    }
}
