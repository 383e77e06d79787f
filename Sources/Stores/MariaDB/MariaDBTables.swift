import BinanceAPI
import StoreKit

/// The catalogue's tables in MariaDB's SQL: `DECIMAL(38,18)`, `DATETIME(3)` in UTC, `BIGINT`, `BOOLEAN`, symbols as
/// ASCII with a binary collation, InnoDB with the table's comment; and the upserts the stores bind.
public enum MariaDBTables {
    /// `CREATE TABLE IF NOT EXISTS` of a catalogue table, in MariaDB's SQL.
    public static func createSQL(_ definition: TableDefinition) -> String { definition.createSQL }
}

extension TableDefinition {
    /// `CREATE TABLE IF NOT EXISTS` from the catalogue.
    var createSQL: String {
        func type(_ column: Column) -> String {
            switch column.kind {
            case .text: "VARCHAR(\(column.length ?? 32)) CHARACTER SET ascii COLLATE ascii_bin"
            case .time: "DATETIME(3)"
            case .decimal: KlineTable.decimalType
            case .integer: "BIGINT"
            case .boolean: "BOOLEAN"
            }
        }
        var lines = ordered.map { column in
            "  `\(column.name)` \(type(column)) \(column.nullable ? "NULL" : "NOT NULL")"
                + (column.defaultsToNow ? " DEFAULT CURRENT_TIMESTAMP(3)" : "") + (column.comment.map { " COMMENT \(Self.quoted($0))" } ?? "")
        }
        lines.append("  PRIMARY KEY (" + key.map { "`\($0)`" }.joined(separator: ", ") + ")")
        lines += indexes.map { "  KEY `ix_\($0.name)` (" + $0.columns.map { "`\($0)`" }.joined(separator: ", ") + ")" }
        return "CREATE TABLE IF NOT EXISTS `\(name)` (\n" + lines.joined(separator: ",\n")
            + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT=\(Self.quoted(comment))"
    }

    /// A string literal of the project's own text (comments hold no quote; one would be doubled).
    static func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
}

extension KlineTable {
    /// DECIMAL(38,18): 20 digits before the point (base volumes of meme coins pass 10^13, which overflows the
    /// DECIMAL(20,8) of older schemas) and 18 after it (prices go down to 1e-8 and below). See `DecimalString`.
    static let decimalType = "DECIMAL(\(DecimalString.integerDigits + DecimalString.fractionDigits),\(DecimalString.fractionDigits))"

    var createSQL: String { definition.createSQL }

    /// The upsert into a table of petrosa-binance-data-extractor's code shape: its `id` (`SYMBOL_openms`), `timestamp`
    /// (the open time), `interval`, `extracted_at` (now, UTC), `extractor_version` and `source` filled as petrosa fills
    /// them; a candle read again replaces its values on `id`, where petrosa's `INSERT IGNORE` kept the first ones.
    var petrosaUpsertSQL: String {
        let ours = Self.columns.map { "`\($0)`" }.joined(separator: ", ")
        let updates = (Self.columns.dropFirst(2) + ["extracted_at", "extractor_version", "source"]).map { "`\($0)` = VALUES(`\($0)`)" }
            .joined(separator: ", ")
        return "INSERT INTO `\(name)` (`id`, `timestamp`, `interval`, `extracted_at`, `extractor_version`, `source`, \(ours)) "
            + "VALUES (?, FROM_UNIXTIME(? * 0.001), ?, UTC_TIMESTAMP(), ?, ?, ?, FROM_UNIXTIME(? * 0.001), FROM_UNIXTIME(? * 0.001), "
            + "?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \(updates)"
    }

    /// petrosa's `source`: `binance-futures` (its default), `binance-spot` for spot.
    var petrosaSource: String { market == .futures ? "binance-futures" : "binance-spot" }

    /// An idempotent upsert: a candle read again replaces every stored value (a candle first stored while it was
    /// still open ends with its final values). Times are bound as Unix milliseconds and converted by the server
    /// in the session's UTC zone; `? * 0.001` is exact (a DECIMAL with 3 fractional digits).
    var upsertSQL: String {
        let updates = columns.dropFirst(2).map { "`\($0)` = VALUES(`\($0)`)" }.joined(separator: ", ")
        let list = columns.map { "`\($0)`" }.joined(separator: ", ")
        let values = Array(repeating: "?", count: columns.count - 3).joined(separator: ", ")
        return "INSERT INTO `\(name)` (\(list)) VALUES (?, FROM_UNIXTIME(? * 0.001), FROM_UNIXTIME(? * 0.001), "
            + "\(values)) ON DUPLICATE KEY UPDATE \(updates)"
    }
}

extension FundingTable {
    static func upsertSQL(table: String) -> String {
        "INSERT INTO `\(table)` (`symbol`, `funding_time`, `funding_rate`, `mark_price`) "
            + "VALUES (?, FROM_UNIXTIME(? * 0.001), ?, NULLIF(?, '')) "
            + "ON DUPLICATE KEY UPDATE `funding_rate` = VALUES(`funding_rate`), `mark_price` = VALUES(`mark_price`)"
    }

    /// Into petrosa-binance-data-extractor's `funding_rates`: its `id`, `timestamp`, `funding_interval_hours` (its
    /// default, 8), `extracted_at`, `extractor_version` and `source` filled as it fills them; upserted on `id`.
    static let petrosaUpsertSQL = "INSERT INTO `\(name)` (`id`, `timestamp`, `extractor_version`, `funding_interval_hours`, `extracted_at`, "
        + "`source`, `symbol`, `funding_time`, `funding_rate`, `mark_price`) "
        + "VALUES (?, FROM_UNIXTIME(? * 0.001), ?, 8, UTC_TIMESTAMP(), 'binance-futures', ?, FROM_UNIXTIME(? * 0.001), ?, NULLIF(?, '')) "
        + "ON DUPLICATE KEY UPDATE `funding_rate` = VALUES(`funding_rate`), `mark_price` = VALUES(`mark_price`), "
        + "`extracted_at` = VALUES(`extracted_at`), `extractor_version` = VALUES(`extractor_version`)"
}

extension TradeTable {
    var upsertSQL: String {
        "INSERT INTO `\(name)` (`symbol`, `agg_trade_id`, `price`, `\(quantityColumn)`, `first_trade_id`, `last_trade_id`, `trade_time`, "
            + "`is_buyer_maker`) VALUES (?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? * 0.001), ?) ON DUPLICATE KEY UPDATE "
            + "`price` = VALUES(`price`), `\(quantityColumn)` = VALUES(`\(quantityColumn)`), `first_trade_id` = VALUES(`first_trade_id`), "
            + "`last_trade_id` = VALUES(`last_trade_id`), `trade_time` = VALUES(`trade_time`), `is_buyer_maker` = VALUES(`is_buyer_maker`)"
    }
}

extension MetricsTable {
    /// A value a batch lacks (NULL) keeps the stored one: REST's five endpoints and the files may each lack a part.
    static let upsertSQL: String = {
        let values = FuturesMetrics.valueColumns
        return "INSERT INTO `\(name)` (`symbol`, `metric_time`, " + values.map { "`\($0)`" }.joined(separator: ", ") + ") VALUES (?, FROM_UNIXTIME(? * 0.001), "
            + values.map { _ in "NULLIF(?, '')" }.joined(separator: ", ") + ") ON DUPLICATE KEY UPDATE "
            + values.map { "`\($0)` = COALESCE(VALUES(`\($0)`), `\($0)`)" }.joined(separator: ", ")
    }()
}
