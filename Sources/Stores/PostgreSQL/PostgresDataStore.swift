import BinanceAPI
import Logging
import StoreKit

/// PostgreSQL as a `DataStore`: klines, their holes and the confirmed-gaps table, funding rates and aggregate trades, in
/// the same tables as on MariaDB (see `PostgresTables`).
public final class PostgresDataStore: DataStore {
    public let pool: PostgresPool

    public init(uri: PostgresURI, size: Int, faults: SessionPool<PostgresConnection>.Faults, lockTimeoutSeconds: Int? = nil, logger: Logger) {
        pool = PostgresPool(uri: uri, size: size, faults: faults, lockTimeoutSeconds: lockTimeoutSeconds, logger: logger)
    }

    public var described: String { "\(pool.uri)" }

    public func shutdown() { pool.shutdown() }

    public var coverage: any CoverageReading { PostgresCoverageStore(store: self) }

    public var audit: any AuditReading { PostgresAuditReader(pool: pool) }

    /// Creates the tables that are missing and checks those that exist (a shape that would round a value or lacks the
    /// upsert's key is refused with the `ALTER TABLE` that fixes it: PostgreSQL's tables are not changed behind their
    /// owner's back).
    public func migrate(klineTables: [KlineTable], otherTables: [TableDefinition]) async throws -> MigrationReport {
        var report = MigrationReport()
        let existing = try await existingTables()
        let klines = PostgresKlineStore(pool: pool)
        var problems: [String] = []
        for table in klineTables {
            if existing.contains(table.name) {
                problems += try await shapeProblems(table.name, columns: PostgresTables.klineColumns(table), key: ["symbol", "open_time"])
                report.unchanged.append(table.name)
            } else {
                try await klines.create([table])
                report.created.append(table.name)
            }
        }
        for definition in otherTables {
            if existing.contains(definition.name) {
                problems += try await shapeProblems(definition.name, columns: Self.columns(definition), key: definition.key)
                report.unchanged.append(definition.name)
            } else {
                let sql = PostgresTables.createSQL(definition)
                try await pool.withConnection { try $0.execute(sql, context: "creating \(definition.name)") }
                report.created.append(definition.name)
            }
        }
        // Every table's fix is named at once, not one a run.
        guard problems.isEmpty else { throw SchemaError(problems.joined(separator: "; ")) }
        return report
    }

    static func columns(_ definition: TableDefinition) -> [(String, TableDefinition.Kind)] {
        definition.columns.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    public func prepare(klineTables: [KlineTable], otherTables: [TableDefinition], dryRun: Bool, logger: Logger) async throws -> PreparedTables {
        let klines = PostgresKlineStore(pool: pool)
        var existing = try await existingTables()
        let missing = klineTables.filter { !existing.contains($0.name) }
        if dryRun {
            if !missing.isEmpty { logger.info("dry run: tables missing, treating them as empty", metadata: ["tables": "\(missing.map(\.name))"]) }
        } else {
            var created = missing.map(\.name)
            if !missing.isEmpty { try await klines.create(missing) }
            for definition in otherTables where !existing.contains(definition.name) {
                let sql = PostgresTables.createSQL(definition)
                try await pool.withConnection { try $0.execute(sql, context: "creating \(definition.name)") }
                created.append(definition.name)
            }
            if !created.isEmpty {
                logger.info("created missing tables", metadata: ["tables": "\(created.joined(separator: ","))"])
                existing = try await existingTables()
            }
            try await checkWritable(klineTables.map(\.name) + otherTables.map(\.name))
        }
        // Every existing table the run writes is checked before a row goes in.
        try await checkShapes(klineTables.filter { existing.contains($0.name) }.map {
            ($0.name, PostgresTables.klineColumns($0), ["symbol", "open_time"])
        } + otherTables.filter { existing.contains($0.name) }.map { ($0.name, Self.columns($0), $0.key) })
        return PreparedTables(existing: existing, klines: klines, funding: PostgresFundingStore(pool: pool), trades: PostgresTradeStore(pool: pool),
                              gaps: PostgresGapStore(pool: pool), metrics: PostgresMetricsStore(pool: pool),
                              catalogue: PostgresCatalogueWriter(pool: pool))
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

    /// An existing table must hold the run's values exactly, and upserts need its key: text of at least 20 characters
    /// where text goes (symbols: `1000000BOBUSDT`, `ETHUSD_251226`), `timestamptz` times with milliseconds (a
    /// `timestamptz(0)` would round `…:59.999` into the next candle's open), `numeric` with at least 20 digits before and
    /// 18 after the point (or unconstrained) for decimals, integer ids, and a unique key on `key`; a NOT NULL column
    /// the run does not fill needs a default. Anything else is refused with the `ALTER TABLE` that fixes it, every one
    /// of them at once.
    func checkShape(_ name: String, columns wanted: [(String, TableDefinition.Kind)], key: [String]) async throws {
        let problems = try await shapeProblems(name, columns: wanted, key: key)
        guard problems.isEmpty else { throw SchemaError(problems.joined(separator: "; ")) }
    }

    /// Checks every table and throws once, naming every `ALTER TABLE` needed (not only the first table's).
    func checkShapes(_ tables: [(name: String, columns: [(String, TableDefinition.Kind)], key: [String])]) async throws {
        var problems: [String] = []
        for table in tables { problems += try await shapeProblems(table.name, columns: table.columns, key: table.key) }
        guard problems.isEmpty else { throw SchemaError(problems.joined(separator: "; ")) }
    }

    /// What keeps `name` from taking the run's rows exactly, one message per column or key, each with its fix.
    func shapeProblems(_ name: String, columns wanted: [(String, TableDefinition.Kind)], key: [String]) async throws -> [String] {
        let found = try await columns(of: name)
        var problems: [String] = []
        func refuse(_ column: String, _ what: String, _ fix: String) {
            problems.append("table \(name) cannot take the rows exactly: column \(column) \(what); \(fix)")
        }
        for (column, kind) in wanted {
            let alter = "ALTER TABLE \(name) ALTER COLUMN \(column) TYPE \(PostgresTables.type(kind))"
            guard let row = found[column] else {
                refuse(column, "is missing", "add it (\(PostgresTables.type(kind))) or drop the table so the run creates it")
                continue
            }
            let type = row[1] ?? ""
            let fits: Bool
            var shown = type
            switch kind {
            case .text:
                // Unbounded text, or at least 20 characters: a longer symbol would fail the write mid-run (22001).
                let length = row[7].flatMap { Int($0) }
                fits = (type.contains("char") || type == "text") && (length.map { $0 >= Self.minimumTextLength } ?? true)
                if let length { shown += "(\(length))" }
            case .time:
                // timestamptz keeps microseconds by default (precision 6); fewer than 3 digits rounds a close time.
                let precision = row[6].flatMap { Int($0) } ?? 6
                fits = type == "timestamp with time zone" && precision >= 3
                if type == "timestamp with time zone" && precision < 3 { shown = "timestamptz(\(precision))" }
            case .integer: fits = type == "bigint" || type == "numeric" && row[3] == "0"
            case .boolean: fits = type == "boolean"
            case .decimal:
                // Unconstrained numeric (no precision) holds every value exactly too.
                let precision = Int(row[2] ?? "") ?? 0, scale = Int(row[3] ?? "") ?? 0
                fits = type == "numeric" && (row[2] == nil || (scale >= 18 && precision - scale >= 20))
                shown += row[2].map { "(\($0),\(row[3] ?? "0"))" } ?? ""
            }
            if !fits {
                let usingUTC = kind == .time && type != "timestamp with time zone" ? " USING \(column) AT TIME ZONE 'UTC'" : ""
                refuse(column, "is \(shown), which cannot hold the run's values exactly", alter + usingUTC)
            }
        }
        let filled = Set(wanted.map(\.0))
        for (column, row) in found.sorted(by: { $0.key < $1.key }) where !filled.contains(column) && row[4] == "NO" && row[5] != "t" {
            refuse(column, "is NOT NULL without a default, and binance-extractor does not fill it",
                   "ALTER TABLE \(name) ALTER COLUMN \(column) DROP NOT NULL (or give it a DEFAULT)")
        }
        let keys = try await pool.withConnection {
            try $0.query("""
                SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_index i
                CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = $1::regclass AND i.indisunique GROUP BY i.indexrelid
                """, [PostgresConnection.identifier(name)], context: "reading the keys of \(name)")
        }
        if !keys.contains(where: { $0.first == key.joined(separator: ",") }) {
            problems.append("table \(name) has no unique key on (\(key.joined(separator: ", "))), which upserts rely on; "
                            + "ALTER TABLE \(name) ADD PRIMARY KEY (\(key.joined(separator: ", ")))")
        }
        return problems
    }

    /// The shortest text column that takes every symbol the run may write.
    static let minimumTextLength = 20

    /// information_schema's word on each column of `name`: name, data type, numeric precision and scale, nullable,
    /// has a default, datetime precision, character length.
    func columns(of name: String) async throws -> [String: [String?]] {
        let columns = try await pool.withConnection {
            try $0.query("""
                SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable, column_default IS NOT NULL,
                       datetime_precision, character_maximum_length
                FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1
                """, [name], context: "reading the shape of \(name)")
        }
        return Dictionary(columns.compactMap { r in r[0].map { ($0, r) } }, uniquingKeysWith: { a, _ in a })
    }
}
