import StoreKit
import BinanceAPI

/// Creates kline tables and upgrades older ones in place, idempotently.
///
/// Upgrades: decimal columns narrower than DECIMAL(38,18) (the Python tool used DECIMAL(20,8)) are widened, which
/// never changes a stored value; a table without a unique key on (symbol, open_time) gets one.
public struct SchemaMigrator: Sendable {
    public let pool: ConnectionPool

    public init(pool: ConnectionPool) { self.pool = pool }

    /// What a migration did, table by table.
    public typealias Report = MigrationReport

    /// Tables among `tables` that do not exist yet.
    public func missingTables(_ tables: [KlineTable]) async throws -> [KlineTable] {
        let existing = try await existingTables()
        return tables.filter { !existing.contains($0.name) }
    }

    public func migrate(_ tables: [KlineTable]) async throws -> Report {
        let existing = try await existingTables()
        var report = Report()
        for table in tables {
            if !existing.contains(table.name) {
                _ = try await pool.withConnection { try $0.execute(table.createSQL) }
                report.created.append(table.name)
            } else if case let changes = try await upgrade(table), !changes.isEmpty {
                report.upgraded.append(table.name)
                report.changes[table.name] = changes
            } else {
                report.unchanged.append(table.name)
            }
        }
        return report
    }

    /// Upgrades existing funding and trades tables in place as `upgrade` does kline tables: narrower decimal columns
    /// widened, DATETIME to DATETIME(3), ids to BIGINT, the unique key added when no duplicates stand in its way.
    /// Tables in petrosa's shape keep their own key (`id`). Returns the changes per table.
    public func upgrade(_ definitions: [TableDefinition]) async throws -> [String: [String]] {
        let existing = try await existingTables()
        var report: [String: [String]] = [:]
        for definition in definitions where existing.contains(definition.name) && !definition.columns.isEmpty {
            let name = definition.name
            let shape = try await TableShape.read(pool, table: name)
            var changes: [String] = []
            for (column, kind) in definition.columns.sorted(by: { $0.key < $1.key }) {
                guard let current = shape.columns[column] else { continue }
                let null = current.nullable ? "NULL" : "NOT NULL"
                switch kind {
                case .decimal:
                    let integer = (current.precision ?? 0) - (current.scale ?? 0)
                    if current.dataType != "decimal" || (current.scale ?? 0) < DecimalString.fractionDigits || integer < DecimalString.integerDigits {
                        changes.append("MODIFY `\(column)` \(KlineTable.decimalType) \(null)")
                    }
                case .time:
                    if TableShape.integerTypes.contains(current.dataType) {
                        throw SchemaError("table \(name), column `\(column)` is \(current.columnType): epoch numbers, which migrate does not convert. Convert it to DATETIME(3) in UTC yourself.")
                    }
                    if (current.datetimePrecision ?? 0) < 3 { changes.append("MODIFY `\(column)` DATETIME(3) \(null)") }
                case .integer:
                    if TableShape.integerTypes.contains(current.dataType) && current.dataType != "bigint" {
                        changes.append("MODIFY `\(column)` BIGINT \(null)")
                    }
                case .text, .boolean:
                    break
                }
            }
            let petrosa = shape.uniqueKeys.contains(["id"]) && shape.columns["extracted_at"] != nil
            if !petrosa && !definition.key.isEmpty && !shape.uniqueKeys.contains(definition.key) {
                let key = definition.key.map { "`\($0)`" }.joined(separator: ", ")
                let duplicates = try await pool.withConnection { db in
                    try db.query("SELECT \(key), COUNT(*) FROM `\(name)` GROUP BY \(key) HAVING COUNT(*) > 1 LIMIT 5")
                }
                guard duplicates.isEmpty else {
                    throw SchemaError("table \(name) holds rows stored more than once, so the unique key on (\(definition.key.joined(separator: ", "))) cannot be added: "
                        + duplicates.map { $0.compactMap { $0 }.joined(separator: " ") }.joined(separator: ", ") + ". Delete the extra rows, then run migrate again.")
                }
                changes.append("ADD UNIQUE KEY `uq_\(definition.key.joined(separator: "_"))` (\(key))")
            }
            guard !changes.isEmpty else { continue }
            let alter = "ALTER TABLE `\(name)` " + changes.joined(separator: ", ")
            _ = try await pool.withConnection { db in try db.execute(alter) }
            report[name] = changes
        }
        return report
    }

    /// Creates the tables among `definitions` that do not exist yet; returns their names.
    public func ensure(_ definitions: [TableDefinition]) async throws -> [String] {
        let existing = try await existingTables()
        var created: [String] = []
        for definition in definitions where !existing.contains(definition.name) {
            _ = try await pool.withConnection { try $0.execute(definition.createSQL) }
            created.append(definition.name)
        }
        return created
    }

    /// Checks, before anything is fetched, that the account may write what the run writes: an upsert of no row
    /// (`INSERT INTO t SELECT * FROM t WHERE 1 = 0 ON DUPLICATE KEY UPDATE`) is checked for SELECT, INSERT and UPDATE
    /// privilege by the server like any other, and changes nothing. A missing privilege is error 1142, a
    /// configuration error (exit 2).
    public func checkWritable(_ tables: [String]) async throws {
        for name in tables {
            _ = try await pool.withConnection { db in
                try db.execute("INSERT INTO `\(name)` SELECT * FROM `\(name)` AS `probe` WHERE 1 = 0 ON DUPLICATE KEY UPDATE `\(name)`.`symbol` = `\(name)`.`symbol`")
            }
        }
    }


    /// Names of the tables in the pool's database.
    public func existingTables() async throws -> Set<String> {
        let rows = try await pool.withConnection {
            try $0.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
        }
        return Set(rows.compactMap { $0[0] })
    }

    /// Brings one existing table to the current shape in place, keeping its other columns and keys; returns the
    /// changes made. What cannot be converted safely (epoch numbers in `open_time`) is refused, never guessed.
    private func upgrade(_ table: KlineTable) async throws -> [String] {
        let name = table.name
        let shape = try await TableShape.read(pool, table: name)
        var changes: [String] = []
        let wantScale = DecimalString.fractionDigits, wantInteger = DecimalString.integerDigits
        for column in table.decimalColumns {
            if let current = shape.columns[column] {
                let integer = (current.precision ?? 0) - (current.scale ?? 0)
                if current.dataType != "decimal" || (current.scale ?? 0) < wantScale || integer < wantInteger {
                    // Widening a DECIMAL never changes a stored value; FLOAT/DOUBLE values are converted as stored.
                    changes.append("MODIFY `\(column)` \(KlineTable.decimalType) NOT NULL")
                }
            } else {
                changes.append("ADD COLUMN `\(column)` \(KlineTable.decimalType) NOT NULL DEFAULT 0")
            }
        }
        let count = table.countColumn
        if let trades = shape.columns[count] {
            if trades.dataType != "bigint" { changes.append("MODIFY `\(count)` BIGINT NOT NULL") }
        } else {
            changes.append("ADD COLUMN `\(count)` BIGINT NOT NULL DEFAULT 0")
        }
        for column in ["open_time", "close_time"] {
            guard let current = shape.columns[column] else {
                if column == "close_time" { changes.append("ADD COLUMN `close_time` DATETIME(3) NOT NULL"); continue }
                throw SchemaError("table \(name) has no `open_time` column: it is not a klines table binance-extractor can upgrade")
            }
            if TableShape.integerTypes.contains(current.dataType) {
                throw SchemaError("table \(name), column `\(column)` is \(current.columnType): epoch numbers, which migrate does not convert "
                    + "(seconds or milliseconds cannot be told apart safely). Convert it to DATETIME(3) in UTC yourself, or let binance-extractor create its own table in another database.")
            }
            if TableShape.timeTypes.contains(current.dataType) && (current.datetimePrecision ?? 0) < 3 {
                // DATETIME -> DATETIME(3) keeps every stored second; new close times keep their .999.
                changes.append("MODIFY `\(column)` DATETIME(3) NOT NULL")
            }
        }
        if !shape.uniqueKeys.contains(where: { $0 == ["symbol", "open_time"] }) {
            let duplicates = try await pool.withConnection { db in
                try db.query("SELECT `symbol`, `open_time`, COUNT(*) FROM `\(name)` GROUP BY `symbol`, `open_time` HAVING COUNT(*) > 1 ORDER BY `symbol`, `open_time` LIMIT 5")
            }
            guard duplicates.isEmpty else {
                let list = duplicates.map { "\($0[0] ?? "") \($0[1] ?? "") (\($0[2] ?? "") rows)" }.joined(separator: ", ")
                throw SchemaError("table \(name) holds candles stored more than once, so the unique key on (symbol, open_time) cannot be added: \(list)"
                    + "\(duplicates.count == 5 ? " and maybe more" : ""). Delete the extra rows (keep one per symbol and open_time), then run migrate again.")
            }
            changes.append("ADD UNIQUE KEY `uq_symbol_open_time` (`symbol`, `open_time`)")
        }
        guard !changes.isEmpty else { return [] }
        let alter = "ALTER TABLE `\(name)` " + changes.joined(separator: ", ")
        _ = try await pool.withConnection { db in try db.execute(alter) }
        if let close = shape.columns["close_time"], TableShape.timeTypes.contains(close.dataType), (close.datetimePrecision ?? 0) < 3 {
            changes.append(try await restoreCloseTimes(table))
        }
        return changes
    }

    /// A `DATETIME` without fractions kept Binance's close time `…:59.999` as `…:59` (or, rounded, as the next candle's
    /// open): once the column holds milliseconds, those rows get their exact close time again, the open time plus the
    /// interval less 1 ms, as new rows have it. Rows already exact, or holding anything else, are left as they are.
    private func restoreCloseTimes(_ table: KlineTable) async throws -> String {
        let exact = table.interval.fixedMilliseconds.map { "DATE_ADD(`open_time`, INTERVAL \(($0 - 1) * 1000) MICROSECOND)" }
            ?? "DATE_SUB(DATE_ADD(`open_time`, INTERVAL 1 MONTH), INTERVAL 1000 MICROSECOND)"
        let sql = "UPDATE `\(table.name)` SET `close_time` = \(exact) WHERE MICROSECOND(`close_time`) = 0 AND "
            + "(`close_time` = DATE_SUB(\(exact), INTERVAL 999000 MICROSECOND) OR `close_time` = DATE_ADD(\(exact), INTERVAL 1000 MICROSECOND))"
        let rows = try await pool.withConnection { db in try db.execute(sql) }
        return "UPDATE close_time of \(rows) rows to the interval's last millisecond (…:59.999)"
    }
}
