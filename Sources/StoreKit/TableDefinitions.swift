import BinanceAPI

/// A table in the project's catalogue, free of any database's SQL: its columns in order, each with a logical kind,
/// its unique key, secondary indexes and what it holds. Each store writes its own DDL from it (Stores/MariaDB,
/// Stores/PostgreSQL), and checks an existing table against it.
public struct TableDefinition: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case text, time, decimal, integer, boolean }

    public struct Column: Sendable, Hashable {
        public let name: String
        public let kind: Kind
        public var nullable = false
        /// Text: the most characters a value has (a symbol: 20).
        public var length: Int?
        /// Set by the database when the row is inserted (when it was recorded); the run does not write it.
        public var defaultsToNow = false
        /// A count added to the stored one when a row meets its key (an upsert adds instead of replacing).
        public var accumulates = false
        public var comment: String?

        public init(_ name: String, _ kind: Kind, nullable: Bool = false, length: Int? = nil, defaultsToNow: Bool = false,
                    accumulates: Bool = false, comment: String? = nil) {
            self.accumulates = accumulates
            self.name = name
            self.kind = kind
            self.nullable = nullable
            self.length = length
            self.defaultsToNow = defaultsToNow
            self.comment = comment
        }

        /// A symbol, as Binance names it (`^[A-Z0-9-_.]{1,20}$`).
        public static let symbol = Column("symbol", .text, length: 20)
        /// A time in UTC, to the millisecond.
        public static func time(_ name: String, comment: String = "UTC") -> Column { Column(name, .time, comment: comment) }
        /// A value as Binance sends it, exactly (see `DecimalString`: 20 digits before the point, 18 after).
        public static func decimal(_ name: String, nullable: Bool = false, comment: String? = nil) -> Column {
            Column(name, .decimal, nullable: nullable, comment: comment)
        }
    }

    /// A secondary index, named for its columns (each store prefixes the name as its namespace requires).
    public struct Index: Sendable, Hashable {
        public let name: String
        public let columns: [String]
        public init(name: String, columns: [String]) {
            self.name = name
            self.columns = columns
        }
    }

    public let name: String
    /// Every column, in order.
    public let ordered: [Column]
    /// The unique key upserts rely on (the primary key of a table the run creates).
    public var key: [String]
    public var indexes: [Index] = []
    /// What the table holds, for its comment.
    public var comment: String

    public init(name: String, columns: [Column], key: [String], indexes: [Index] = [], comment: String) {
        self.name = name
        ordered = columns
        self.key = key
        self.indexes = indexes
        self.comment = comment
    }

    /// The columns the run writes, and the kind of value each holds (for checking a table that already exists).
    public var columns: [String: Kind] {
        Dictionary(uniqueKeysWithValues: ordered.filter { !$0.defaultsToNow }.map { ($0.name, $0.kind) })
    }
}

/// Every table besides the kline tables, for `migrate` and `coverage`.
public enum TableCatalogue {
    public static var otherTables: [TableDefinition] {
        [FundingTable.definition, FundingTable.definition(for: .coinm)] + Market.allCases.map { TradeTable(market: $0).definition }
            + [ConfirmedGapTable.definition, MetricsTable.definition, ArchiveLedgerTable.definition, RowSourcesTable.definition]
    }
}

/// `funding_rates` (USD-M) and `coinm_funding_rates` (COIN-M perpetuals): one row per symbol and funding time, unique
/// (symbol, funding_time).
public enum FundingTable {
    public static let name = "funding_rates"
    public static let definition = definition(for: .futures)

    /// The market's table: `funding_rates` for USD-M, `coinm_funding_rates` for COIN-M.
    public static func name(for market: Market) -> String { market == .coinm ? "coinm_funding_rates" : name }

    public static func definition(for market: Market) -> TableDefinition {
        TableDefinition(name: name(for: market), columns: [
            .symbol, .time("funding_time"), .decimal("funding_rate"),
            .decimal("mark_price", nullable: true, comment: "NULL where Binance sends none (older records)"),
        ], key: ["symbol", "funding_time"], comment: "Binance \(market.displayName) funding rates")
    }
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
        TableDefinition(name: name, columns: [
            .symbol, TableDefinition.Column("agg_trade_id", .integer), .decimal("price"), .decimal(quantityColumn),
            TableDefinition.Column("first_trade_id", .integer), TableDefinition.Column("last_trade_id", .integer), .time("trade_time"),
            TableDefinition.Column("is_buyer_maker", .boolean),
        ], key: ["symbol", "agg_trade_id"], indexes: [TableDefinition.Index(name: "symbol_time", columns: ["symbol", "trade_time"])],
        comment: "Binance \(market.displayName) aggregate trades")
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

    static let comments = ["sum_open_interest": "contracts (base asset)", "sum_open_interest_value": "quote asset"]

    public static let definition = TableDefinition(
        name: name,
        columns: [.symbol, .time("metric_time", comment: "UTC, on the 5-minute grid")]
            + FuturesMetrics.valueColumns.map { .decimal($0, nullable: true, comment: comments[$0]) },
        key: ["symbol", "metric_time"],
        comment: "Binance USD-M open interest and trader ratios, every 5 minutes; NULL where Binance published none")
}

/// `kline_gaps_confirmed`: holes Binance itself has no candles for (an outage, before listing, after delisting),
/// recorded once asked, so the nightly gap filler does not ask again.
public enum ConfirmedGapTable {
    public static let name = "kline_gaps_confirmed"
    public static let definition = TableDefinition(name: name, columns: [
        TableDefinition.Column("table_name", .text, length: 32), .symbol,
        .time("gap_start", comment: "first missing open time, UTC"), .time("gap_end", comment: "last missing open time, UTC"),
        TableDefinition.Column("confirmed_at", .time, defaultsToNow: true),
    ], key: ["table_name", "symbol", "gap_start", "gap_end"], comment: "kline holes Binance has no candles for")
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
