import BinanceAPI

/// A table the project owns besides the kline tables: its name, how to create it, and what the run writes into it
/// (for checking a table that already exists).
public struct TableDefinition: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case text, time, decimal, integer, boolean }
    public let name: String
    public let createSQL: String
    /// The columns the run writes, and the kind of value each holds.
    public var columns: [String: Kind] = [:]
    /// The unique key upserts rely on.
    public var key: [String] = []
}

/// `funding_rates` (USD-M) and `coinm_funding_rates` (COIN-M perpetuals): one row per symbol and funding time, unique
/// (symbol, funding_time).
public enum FundingTable {
    public static let name = "funding_rates"
    public static let definition = definition(for: .futures)

    /// The market's table: `funding_rates` for USD-M, `coinm_funding_rates` for COIN-M.
    public static func name(for market: Market) -> String { market == .coinm ? "coinm_funding_rates" : name }

    public static func definition(for market: Market) -> TableDefinition {
        let name = name(for: market)
        return TableDefinition(name: name, createSQL: """
            CREATE TABLE IF NOT EXISTS `\(name)` (
              `symbol` VARCHAR(20) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
              `funding_time` DATETIME(3) NOT NULL COMMENT 'UTC',
              `funding_rate` \(KlineTable.decimalType) NOT NULL,
              `mark_price` \(KlineTable.decimalType) NULL COMMENT 'NULL where Binance sends none (older records)',
              PRIMARY KEY (`symbol`, `funding_time`)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Binance \(market.displayName) funding rates'
            """, columns: ["symbol": .text, "funding_time": .time, "funding_rate": .decimal, "mark_price": .decimal],
            key: ["symbol", "funding_time"])
    }

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

/// `agg_trades` (futures) and `spot_agg_trades`: unique (symbol, agg_trade_id).
public struct TradeTable: Sendable, Hashable, CustomStringConvertible {
    public let market: Market
    public init(market: Market) { self.market = market }
    public var name: String {
        switch market {
        case .futures: "agg_trades"
        case .spot: "spot_agg_trades"
        case .coinm: "coinm_agg_trades"
        }
    }
    public var description: String { name }

    /// COIN-M trades count contracts ("q": quantity in contracts); the others the base asset.
    public var quantityColumn: String { market == .coinm ? "quantity_contracts" : "quantity" }

    public var definition: TableDefinition {
        TableDefinition(name: name, createSQL: """
            CREATE TABLE IF NOT EXISTS `\(name)` (
              `symbol` VARCHAR(20) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
              `agg_trade_id` BIGINT NOT NULL,
              `price` \(KlineTable.decimalType) NOT NULL,
              `\(quantityColumn)` \(KlineTable.decimalType) NOT NULL,
              `first_trade_id` BIGINT NOT NULL,
              `last_trade_id` BIGINT NOT NULL,
              `trade_time` DATETIME(3) NOT NULL COMMENT 'UTC',
              `is_buyer_maker` BOOLEAN NOT NULL,
              PRIMARY KEY (`symbol`, `agg_trade_id`),
              KEY `ix_symbol_time` (`symbol`, `trade_time`)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Binance \(market.displayName) aggregate trades'
            """, columns: ["symbol": .text, "agg_trade_id": .integer, "price": .decimal, quantityColumn: .decimal, "first_trade_id": .integer,
                          "last_trade_id": .integer, "trade_time": .time, "is_buyer_maker": .boolean],
            key: ["symbol", "agg_trade_id"])
    }

    var upsertSQL: String {
        "INSERT INTO `\(name)` (`symbol`, `agg_trade_id`, `price`, `\(quantityColumn)`, `first_trade_id`, `last_trade_id`, `trade_time`, "
            + "`is_buyer_maker`) VALUES (?, ?, ?, ?, ?, ?, FROM_UNIXTIME(? * 0.001), ?) ON DUPLICATE KEY UPDATE "
            + "`price` = VALUES(`price`), `\(quantityColumn)` = VALUES(`\(quantityColumn)`), `first_trade_id` = VALUES(`first_trade_id`), "
            + "`last_trade_id` = VALUES(`last_trade_id`), `trade_time` = VALUES(`trade_time`), `is_buyer_maker` = VALUES(`is_buyer_maker`)"
    }
}

/// `futures_metrics`: USD-M open interest and trader ratios, one row per symbol and 5-minute time, unique (symbol,
/// metric_time); a value Binance did not publish is NULL.
public struct MetricsTable: GapTable, Hashable {
    public static let name = "futures_metrics"
    public var name: String { Self.name }
    public var timeColumn: String { "metric_time" }
    public var interval: KlineInterval { .m5 }
    public init() {}

    public static let definition = TableDefinition(name: name, createSQL: """
        CREATE TABLE IF NOT EXISTS `\(name)` (
          `symbol` VARCHAR(20) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
          `metric_time` DATETIME(3) NOT NULL COMMENT 'UTC, on the 5-minute grid',
          `sum_open_interest` \(KlineTable.decimalType) NULL COMMENT 'contracts (base asset)',
          `sum_open_interest_value` \(KlineTable.decimalType) NULL COMMENT 'quote asset',
          `top_trader_long_short_account_ratio` \(KlineTable.decimalType) NULL,
          `top_trader_long_short_position_ratio` \(KlineTable.decimalType) NULL,
          `global_long_short_account_ratio` \(KlineTable.decimalType) NULL,
          `taker_buy_sell_volume_ratio` \(KlineTable.decimalType) NULL,
          PRIMARY KEY (`symbol`, `metric_time`)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='Binance USD-M open interest and trader ratios, every 5 minutes; NULL where Binance published none'
        """, columns: Dictionary(uniqueKeysWithValues: [("symbol", .text), ("metric_time", .time)] + FuturesMetrics.valueColumns.map { ($0, .decimal) }),
        key: ["symbol", "metric_time"])

    /// A value a batch lacks (NULL) keeps the stored one: REST's five endpoints and the files may each lack a part.
    static let upsertSQL: String = {
        let values = FuturesMetrics.valueColumns
        return "INSERT INTO `\(name)` (`symbol`, `metric_time`, " + values.map { "`\($0)`" }.joined(separator: ", ") + ") VALUES (?, FROM_UNIXTIME(? * 0.001), "
            + values.map { _ in "NULLIF(?, '')" }.joined(separator: ", ") + ") ON DUPLICATE KEY UPDATE "
            + values.map { "`\($0)` = COALESCE(VALUES(`\($0)`), `\($0)`)" }.joined(separator: ", ")
    }()
}

/// `kline_gaps_confirmed`: holes Binance itself has no candles for (an outage, before listing, after delisting),
/// recorded once asked, so the nightly gap filler does not ask again.
public enum ConfirmedGapTable {
    public static let name = "kline_gaps_confirmed"
    public static let definition = TableDefinition(name: name, createSQL: """
        CREATE TABLE IF NOT EXISTS `\(name)` (
          `table_name` VARCHAR(32) CHARACTER SET ascii NOT NULL,
          `symbol` VARCHAR(20) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
          `gap_start` DATETIME(3) NOT NULL COMMENT 'first missing open time, UTC',
          `gap_end` DATETIME(3) NOT NULL COMMENT 'last missing open time, UTC',
          `confirmed_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
          PRIMARY KEY (`table_name`, `symbol`, `gap_start`, `gap_end`)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='kline holes Binance has no candles for'
        """, columns: ["table_name": .text, "symbol": .text, "gap_start": .time, "gap_end": .time],
        key: ["table_name", "symbol", "gap_start", "gap_end"])
}

extension KlineHole {
    /// Holes from a hole query's rows, whichever database answered it: (symbol, the open time before the hole in ms,
    /// or NULL for "from `since`", the open time after it in ms). Sorted by symbol and start.
    public static func holes(rows: [[String?]], interval: KlineInterval, since: Int64?) -> [KlineHole] {
        var holes: [KlineHole] = []
        for row in rows where row.count >= 3 {
            guard let symbol = row[0], let nextText = row[2], let next = Int64(nextText) else { continue }
            let from: Int64
            if let prevText = row[1], let prev = Int64(prevText) {
                from = interval.nextOpenTime(after: prev)
            } else if let since {
                from = interval.firstOpenTime(atOrAfter: since)
            } else {
                continue
            }
            let to = interval.openTime(containing: next - 1)
            guard to >= from else { continue }
            holes.append(KlineHole(symbol: symbol, from: from, to: to, missing: interval.count(from: from, to: to)))
        }
        return holes.sorted { ($0.symbol, $0.from) < ($1.symbol, $1.from) }
    }
}

/// A hole in stored klines: open times `from` through `to` (inclusive) are missing.
public struct KlineHole: Sendable, Hashable, CustomStringConvertible {
    public let symbol: String
    public let from: Int64
    public let to: Int64
    public let missing: Int64

    public init(symbol: String, from: Int64, to: Int64, missing: Int64) {
        self.symbol = symbol
        self.from = from
        self.to = to
        self.missing = missing
    }

    public var description: String { "\(symbol) \(UTCCalendar.iso8601(from)) .. \(UTCCalendar.iso8601(to)) (\(missing) candles)" }
}
