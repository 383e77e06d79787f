import StoreKit
import BinanceAPI


/// What information_schema says of one table's columns and unique keys.
public struct TableShape: Sendable {
    /// The narrowest text column that takes every symbol the run may write (Binance's are up to 20 characters).
    public static let minimumTextLength = 20

    public struct Column: Sendable {
        public var dataType: String
        /// `decimal(20,8)`, `datetime(3)`, `bigint(20)`, …
        public var columnType: String
        public var precision: Int?
        public var scale: Int?
        public var datetimePrecision: Int?
        public var nullable: Bool
        /// `varchar(5)`: 5; nil for other types.
        public var textLength: Int? {
            guard let open = columnType.firstIndex(of: "("), let close = columnType.firstIndex(of: ")"), open < close else { return nil }
            return Int(columnType[columnType.index(after: open)..<close])
        }
        public var hasDefault: Bool
        public var autoIncrement: Bool
        public var generated: Bool
    }
    public var columns: [String: Column]
    /// Columns of each unique key (the primary key included), in key order.
    public var uniqueKeys: [[String]]

    public static func read(_ pool: ConnectionPool, table: String) async throws -> TableShape {
        try await pool.withConnection { db in
            let rows = try db.query("""
                SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, IS_NULLABLE,
                       COLUMN_DEFAULT IS NOT NULL, EXTRA FROM information_schema.COLUMNS
                WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = \(try db.quote(table))
                """)
            var columns: [String: Column] = [:]
            for r in rows {
                guard let name = r[0] else { continue }
                let extra = (r[8] ?? "").lowercased()
                // MariaDB reports a NULL default of a nullable column as the text NULL.
                columns[name] = Column(dataType: (r[1] ?? "").lowercased(), columnType: (r[2] ?? "").lowercased(),
                                       precision: r[3].flatMap { Int($0) }, scale: r[4].flatMap { Int($0) },
                                       datetimePrecision: r[5].flatMap { Int($0) }, nullable: r[6] == "YES",
                                       hasDefault: r[7] == "1", autoIncrement: extra.contains("auto_increment"),
                                       generated: extra.contains("generated") || extra.contains("virtual") || extra.contains("persistent"))
            }
            let keys = try db.query("""
                SELECT INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS
                WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = \(try db.quote(table)) AND NON_UNIQUE = 0 GROUP BY INDEX_NAME
                """)
            return TableShape(columns: columns, uniqueKeys: keys.compactMap { $0[1].map { $0.split(separator: ",").map(String.init) } })
        }
    }

    public static let integerTypes: Set<String> = ["tinyint", "smallint", "mediumint", "int", "integer", "bigint"]

    /// Checks an existing table against what the run writes into it (`definition`): every column there with a type
    /// that holds its values exactly, no NOT NULL column the run leaves empty, and the unique key upserts rely on.
    public func check(_ definition: TableDefinition) throws(SchemaError) {
        let table = definition.name
        func fail(_ column: String, found: String, expected: String, fix: String) -> SchemaError {
            SchemaError("table \(table), column `\(column)`: found \(found), expected \(expected); \(fix). Nothing was written.")
        }
        for (name, kind) in definition.columns.sorted(by: { $0.key < $1.key }) {
            guard let column = columns[name] else {
                throw fail(name, found: "no such column", expected: "it", fix: "add it, or let binance-extractor create its own table in another database")
            }
            switch kind {
            case .text:
                guard ["varchar", "char"].contains(column.dataType) else { throw fail(name, found: column.columnType, expected: "VARCHAR", fix: "store it as text") }
                // The catalogue's own width for the column (a symbol's 20 characters when it gives none).
                let wanted = definition.ordered.first { $0.name == name }?.length ?? TableShape.minimumTextLength
                guard column.textLength.map({ $0 >= wanted }) ?? true else {
                    throw fail(name, found: column.columnType, expected: "VARCHAR(\(wanted)) or wider",
                               fix: "a longer value would fail its batch mid-run: ALTER TABLE `\(table)` MODIFY `\(name)` VARCHAR(\(wanted))\(column.nullable ? "" : " NOT NULL")")
                }
            case .time:
                if Self.integerTypes.contains(column.dataType) {
                    throw fail(name, found: "\(column.columnType) (epoch numbers)", expected: "DATETIME(3) in UTC",
                               fix: "binance-extractor does not guess whether those numbers are seconds or milliseconds; convert the column yourself")
                }
                guard Self.timeTypes.contains(column.dataType), (column.datetimePrecision ?? 0) >= 3 else {
                    throw fail(name, found: column.columnType, expected: "DATETIME(3)",
                               fix: "Binance's times have milliseconds: run `binance-extractor migrate`, or ALTER TABLE `\(table)` MODIFY `\(name)` DATETIME(3)\(column.nullable ? "" : " NOT NULL")")
                }
            case .decimal:
                let integer = (column.precision ?? 0) - (column.scale ?? 0)
                guard column.dataType == "decimal", (column.scale ?? 0) >= DecimalString.fractionDigits, integer >= DecimalString.integerDigits else {
                    throw fail(name, found: column.columnType, expected: KlineTable.decimalType,
                               fix: "narrower columns round Binance's values: run `binance-extractor migrate`, or ALTER TABLE `\(table)` MODIFY `\(name)` \(KlineTable.decimalType)\(column.nullable ? "" : " NOT NULL")")
                }
            case .integer, .boolean:
                guard Self.integerTypes.contains(column.dataType) || column.dataType == "bit" || column.dataType == "boolean" else {
                    throw fail(name, found: column.columnType, expected: kind == .integer ? "BIGINT" : "BOOLEAN", fix: "store it as a number")
                }
                if kind == .integer && column.dataType != "bigint" {
                    throw fail(name, found: column.columnType, expected: "BIGINT",
                               fix: "Binance's ids pass 2^31: run `binance-extractor migrate`, or ALTER TABLE `\(table)` MODIFY `\(name)` BIGINT\(column.nullable ? "" : " NOT NULL")")
                }
            }
        }
        for (name, column) in columns.sorted(by: { $0.key < $1.key }) where definition.columns[name] == nil {
            if !column.nullable && !column.hasDefault && !column.autoIncrement && !column.generated {
                throw fail(name, found: "\(column.columnType) NOT NULL without a default", expected: "a column binance-extractor fills, or one with a default",
                           fix: "this table was made for another tool's rows; let the column be empty (ALTER TABLE `\(table)` MODIFY `\(name)` \(column.columnType) NULL), or let binance-extractor create its own table in another database")
            }
        }
        guard uniqueKeys.contains(where: { $0 == definition.key }) else {
            throw SchemaError("table \(table) has no unique key on (\(definition.key.joined(separator: ", "))): rows read again would be stored twice; "
                + "run `binance-extractor migrate`, which adds it (ALTER TABLE `\(table)` ADD UNIQUE KEY (\(definition.key.map { "`\($0)`" }.joined(separator: ", ")))) once no duplicates stand in its way. Nothing was written.")
        }
    }
    public static let timeTypes: Set<String> = ["datetime", "timestamp"]
}

/// How the rows of a run go into one existing kline table, once its shape has been checked.
public struct KlineTableCheck: Sendable, Equatable {
    /// Decimal columns narrower than DECIMAL(38,18) (petrosa's DECIMAL(20,8)): name -> (integer digits, scale). A
    /// value they would round or cannot hold ends the unit before its batch is written.
    public var narrowDecimals: [String: DecimalLimit] = [:]
    /// `close_time` is a DATETIME without fractions: it gets the close time to the second, as petrosa stores it.
    public var closeTimeToTheSecond = false
    /// The table is the one petrosa-binance-data-extractor's code creates (a VARCHAR `id` of `SYMBOL_openms`,
    /// `timestamp`, `interval`, `extracted_at`, `extractor_version`, `source`): rows are written in its shape,
    /// upserted on `id`, so petrosa's readers keep working and the open candle is corrected.
    public var petrosaRows: PetrosaRows?

    public struct PetrosaRows: Sendable, Equatable {
        /// What goes into `extractor_version` (petrosa writes its own version there).
        public var extractorVersion: String
        public init(extractorVersion: String) { self.extractorVersion = extractorVersion }
        /// The columns petrosa fills besides ours.
        public static let columns = ["id", "timestamp", "interval", "extracted_at", "extractor_version", "source"]
    }

    public init() {}

    public struct DecimalLimit: Sendable, Equatable {
        public var integerDigits: Int
        public var scale: Int
        public init(integerDigits: Int, scale: Int) {
            self.integerDigits = integerDigits
            self.scale = scale
        }

        /// What the column would do to `value`, or nil when it holds it exactly.
        func violation(_ value: DecimalString) -> String? {
            let (integer, fraction) = KlineTableCheck.digits(value.text)
            if integer > integerDigits { return "refused as out of range" }
            return fraction > scale ? "rounded" : nil
        }

        var sqlType: String { "DECIMAL(\(integerDigits + scale),\(scale))" }
    }

    /// Checks `table`'s shape against what the run writes. Throws `SchemaError` naming table, column, what was found
    /// and what is expected, and the command that fixes it.
    public static func check(_ shape: TableShape, table kind: KlineTable) throws(SchemaError) -> KlineTableCheck {
        let table = kind.name
        var check = KlineTableCheck()
        let migrate = "run `binance-extractor migrate` to upgrade it in place"
        func fail(_ column: String, found: String, expected: String, fix: String) -> SchemaError {
            SchemaError("table \(table), column `\(column)`: found \(found), expected \(expected); \(fix). Nothing was written.")
        }
        for name in kind.columns {
            guard let column = shape.columns[name] else {
                throw fail(name, found: "no such column", expected: name == kind.countColumn ? "BIGINT" : "it", fix: migrate)
            }
            switch name {
            case "symbol":
                guard ["varchar", "char"].contains(column.dataType) else {
                    throw fail(name, found: column.columnType, expected: "VARCHAR(20)", fix: "store symbols as text")
                }
                guard column.textLength.map({ $0 >= TableShape.minimumTextLength }) ?? true else {
                    throw fail(name, found: column.columnType, expected: "VARCHAR(\(TableShape.minimumTextLength)) or wider",
                               fix: "a longer symbol (1000000BOBUSDT, ETHUSD_251226) would fail its batch mid-run: ALTER TABLE `\(table)` MODIFY `symbol` VARCHAR(\(TableShape.minimumTextLength)) NOT NULL")
                }
            case "open_time", "close_time":
                if TableShape.integerTypes.contains(column.dataType) {
                    throw fail(name, found: "\(column.columnType) (epoch numbers)", expected: "DATETIME(3) in UTC",
                               fix: "binance-extractor does not guess whether those numbers are seconds or milliseconds; convert the column to DATETIME(3) yourself, or let binance-extractor create its own table in another database")
                }
                guard TableShape.timeTypes.contains(column.dataType) else {
                    throw fail(name, found: column.columnType, expected: "DATETIME(3)", fix: migrate)
                }
                if (column.datetimePrecision ?? 0) < 3 {
                    // An open time is always on a whole second; a close time ends in .999.
                    if name == "close_time" { check.closeTimeToTheSecond = true }
                }
            case kind.countColumn:
                guard TableShape.integerTypes.contains(column.dataType) else {
                    throw fail(name, found: column.columnType, expected: "BIGINT", fix: migrate)
                }
            default:
                guard column.dataType == "decimal", let precision = column.precision, let scale = column.scale else {
                    throw fail(name, found: column.columnType, expected: KlineTable.decimalType,
                               fix: "a \(column.dataType) column does not keep Binance's decimals exactly; \(migrate)")
                }
                if scale < DecimalString.fractionDigits || precision - scale < DecimalString.integerDigits {
                    check.narrowDecimals[name] = DecimalLimit(integerDigits: precision - scale, scale: scale)
                }
            }
        }
        // petrosa's code shape: its own columns are filled as petrosa fills them.
        let petrosa = kind.isTrade && PetrosaRows.columns.allSatisfy { shape.columns[$0] != nil }
            && ["varchar", "char"].contains(shape.columns["id"]?.dataType ?? "") && shape.uniqueKeys.contains(["id"])
        if petrosa { check.petrosaRows = PetrosaRows(extractorVersion: "") }
        // A column the run does not fill must fill itself.
        for (name, column) in shape.columns.sorted(by: { $0.key < $1.key })
        where !kind.columns.contains(name) && !(petrosa && PetrosaRows.columns.contains(name)) {
            if !column.nullable && !column.hasDefault && !column.autoIncrement && !column.generated {
                throw fail(name, found: "\(column.columnType) NOT NULL without a default", expected: "a column binance-extractor fills, or one with a default",
                           fix: "this table was made for another tool's rows; let the column be empty (ALTER TABLE `\(table)` MODIFY `\(name)` \(column.columnType) NULL), or let binance-extractor create its own table in another database")
            }
        }
        // petrosa's `id` is `SYMBOL_openms`: unique per symbol and open time, so upserts on it never duplicate.
        guard petrosa || shape.uniqueKeys.contains(where: { $0 == ["symbol", "open_time"] }) else {
            throw SchemaError("table \(table) has no unique key on (symbol, open_time): a candle read again would be stored twice; \(migrate) (it adds the key, or lists the duplicates in its way). Nothing was written.")
        }
        return check
    }

    /// Refuses a batch that the narrower columns would round or cannot hold.
    public func verify(_ klines: [Kline], table: String) throws(SchemaError) {
        guard !narrowDecimals.isEmpty else { return }
        for kline in klines {
            for (column, value) in KlineTableCheck.values(kline) {
                guard let limit = narrowDecimals[column], let violation = limit.violation(value) else { continue }
                throw SchemaError("table \(table), column `\(column)` is \(limit.sqlType): "
                    + "\(value.text) (candle at \(UTCCalendar.iso8601(kline.openTime))) would be \(violation)"
                    + "; run `binance-extractor migrate` to widen it to \(KlineTable.decimalType). Nothing of this batch was written.")
            }
        }
    }

    static func values(_ k: Kline) -> [(String, DecimalString)] {
        [("open_price", k.open), ("high_price", k.high), ("low_price", k.low), ("close_price", k.close), ("volume", k.volume),
         ("quote_asset_volume", k.quoteAssetVolume), ("taker_buy_base_asset_volume", k.takerBuyBaseAssetVolume),
         ("taker_buy_quote_asset_volume", k.takerBuyQuoteAssetVolume)]
    }

    /// Significant digits before the point (leading zeros dropped) and after it (trailing zeros dropped); a sign
    /// does not count.
    static func digits(_ text: String) -> (Int, Int) {
        let unsigned = text.hasPrefix("-") ? String(text.dropFirst()) : text
        let parts = unsigned.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let integer = parts[0].drop { $0 == "0" }.count
        let fraction = parts.count > 1 ? parts[1].reversed().drop { $0 == "0" }.count : 0
        return (integer, fraction)
    }
}

/// How funding rates go into an existing `funding_rates`, once its shape has been checked.
public struct FundingTableCheck: Sendable, Equatable {
    /// Narrower decimal columns (petrosa's DECIMAL(20,8)): every value is checked to fit before its batch.
    public var narrowDecimals: [String: KlineTableCheck.DecimalLimit] = [:]
    /// `funding_time` is a DATETIME without fractions: funding times are stored to the second, as petrosa does.
    public var timeToTheSecond = false
    /// petrosa-binance-data-extractor's shape (`id` = `SYMBOL_fundingms`, `timestamp`, `funding_interval_hours`,
    /// `extracted_at`, `extractor_version`, `source`): rows written in its shape, upserted on `id`; the value is
    /// what goes into `extractor_version`.
    public var petrosaVersion: String?

    public init() {}

    public static let petrosaColumns = ["id", "timestamp", "funding_interval_hours", "extracted_at", "extractor_version", "source"]

    /// Our shape is checked as any other table (`TableShape.check`); petrosa's is accepted with its own columns.
    public static func check(_ shape: TableShape) throws(SchemaError) -> FundingTableCheck {
        let petrosa = petrosaColumns.allSatisfy { shape.columns[$0] != nil }
            && ["varchar", "char"].contains(shape.columns["id"]?.dataType ?? "") && shape.uniqueKeys.contains(["id"])
        guard petrosa else {
            try shape.check(FundingTable.definition)
            return FundingTableCheck()
        }
        var check = FundingTableCheck()
        check.petrosaVersion = ""
        let table = FundingTable.name
        for (name, column) in shape.columns.sorted(by: { $0.key < $1.key }) {
            switch name {
            case "funding_rate", "mark_price":
                guard column.dataType == "decimal", let precision = column.precision, let scale = column.scale else {
                    throw SchemaError("table \(table), column `\(name)`: found \(column.columnType), expected DECIMAL; it does not keep Binance's decimals exactly. Nothing was written.")
                }
                if scale < DecimalString.fractionDigits || precision - scale < DecimalString.integerDigits {
                    check.narrowDecimals[name] = .init(integerDigits: precision - scale, scale: scale)
                }
            case "funding_time":
                guard TableShape.timeTypes.contains(column.dataType) else {
                    throw SchemaError("table \(table), column `funding_time`: found \(column.columnType), expected DATETIME. Nothing was written.")
                }
                check.timeToTheSecond = (column.datetimePrecision ?? 0) < 3
            default:
                let filled = ["symbol"] + petrosaColumns
                if !filled.contains(name) && !column.nullable && !column.hasDefault && !column.autoIncrement && !column.generated {
                    throw SchemaError("table \(table), column `\(name)`: found \(column.columnType) NOT NULL without a default, expected a column binance-extractor fills, or one with a default; let it be empty (ALTER TABLE `\(table)` MODIFY `\(name)` \(column.columnType) NULL). Nothing was written.")
                }
            }
        }
        return check
    }

    /// Refuses a batch that the narrower columns would round or cannot hold.
    public func verify(_ rows: [FundingRate]) throws(SchemaError) {
        guard !narrowDecimals.isEmpty else { return }
        for row in rows {
            for (column, value) in [("funding_rate", row.fundingRate), ("mark_price", row.markPrice)] {
                guard let value, let limit = narrowDecimals[column], let violation = limit.violation(value) else { continue }
                throw SchemaError("table \(FundingTable.name), column `\(column)` is \(limit.sqlType): "
                    + "\(value.text) (funding time \(UTCCalendar.iso8601(row.fundingTime))) would be \(violation)"
                    + "; run `binance-extractor migrate` to widen it (ALTER TABLE `funding_rates` MODIFY `\(column)` \(KlineTable.decimalType)). Nothing of this batch was written.")
            }
        }
    }
}
