import BinanceAPI

/// Creates kline tables and upgrades older ones in place, idempotently.
///
/// Upgrades: decimal columns narrower than DECIMAL(38,18) (the Python tool used DECIMAL(20,8)) are widened, which
/// never changes a stored value; a table without a unique key on (symbol, open_time) gets one.
public struct SchemaMigrator: Sendable {
    public let pool: ConnectionPool

    public init(pool: ConnectionPool) { self.pool = pool }

    /// What a migration did, table by table.
    public struct Report: Sendable, Equatable {
        public var created: [String] = []
        public var upgraded: [String] = []
        public var unchanged: [String] = []
    }

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
            } else if try await upgrade(table) {
                report.upgraded.append(table.name)
            } else {
                report.unchanged.append(table.name)
            }
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

    /// Every table besides the kline tables.
    public static var otherTables: [TableDefinition] {
        [FundingTable.definition, TradeTable(market: .futures).definition, TradeTable(market: .spot).definition, ConfirmedGapTable.definition]
    }

    /// Names of the tables in the pool's database.
    public func existingTables() async throws -> Set<String> {
        let rows = try await pool.withConnection {
            try $0.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
        }
        return Set(rows.compactMap { $0[0] })
    }

    /// Brings one existing table to the current shape; returns whether anything changed.
    private func upgrade(_ table: KlineTable) async throws -> Bool {
        let name = table.name
        return try await pool.withConnection { db in
            let columns = try db.query("""
                SELECT COLUMN_NAME, NUMERIC_PRECISION, NUMERIC_SCALE, DATA_TYPE FROM information_schema.COLUMNS
                WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = \(try db.quote(name))
                """)
            var byName: [String: (precision: Int, scale: Int, type: String)] = [:]
            for row in columns {
                byName[row[0] ?? ""] = (Int(row[1] ?? "") ?? 0, Int(row[2] ?? "") ?? 0, row[3] ?? "")
            }
            var changes: [String] = []
            let wantScale = DecimalString.fractionDigits, wantInteger = DecimalString.integerDigits
            for column in KlineTable.decimalColumns {
                if let current = byName[column] {
                    if current.type != "decimal" || current.scale < wantScale || current.precision - current.scale < wantInteger {
                        changes.append("MODIFY `\(column)` \(KlineTable.decimalType) NOT NULL")
                    }
                } else {
                    changes.append("ADD COLUMN `\(column)` \(KlineTable.decimalType) NOT NULL DEFAULT 0")
                }
            }
            if byName["number_of_trades"] == nil { changes.append("ADD COLUMN `number_of_trades` BIGINT NOT NULL DEFAULT 0") }
            if byName["close_time"] == nil { changes.append("ADD COLUMN `close_time` DATETIME(3) NOT NULL") }
            let keys = try db.query("""
                SELECT INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS
                WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = \(try db.quote(name)) AND NON_UNIQUE = 0
                GROUP BY INDEX_NAME
                """)
            if !keys.contains(where: { $0[1] == "symbol,open_time" }) {
                changes.append("ADD UNIQUE KEY `uq_symbol_open_time` (`symbol`, `open_time`)")
            }
            guard !changes.isEmpty else { return false }
            try db.execute("ALTER TABLE `\(name)` " + changes.joined(separator: ", "))
            return true
        }
    }
}
