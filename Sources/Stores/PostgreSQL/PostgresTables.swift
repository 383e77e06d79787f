import BinanceAPI
import StoreKit

/// The project's tables in PostgreSQL: the names and columns they have on MariaDB, in PostgreSQL's types
/// (`numeric(38,18)`, `timestamptz`, `bigint`, `boolean`), each with the primary key upserts rely on.
public enum PostgresTables {
    static func id(_ name: String) -> String { PostgresConnection.identifier(name) }

    /// The PostgreSQL type of a column of this kind (text: `length` characters, 32 when the catalogue gives none).
    static func type(_ kind: TableDefinition.Kind, length: Int? = nil) -> String {
        switch kind {
        case .text: "varchar(\(length ?? 32))"
        case .time: "timestamptz"
        case .decimal: "numeric(38,18)"
        case .integer: "bigint"
        case .boolean: "boolean"
        }
    }

    /// A kline table's columns and their kinds, in the catalogue's order.
    static func klineColumns(_ table: KlineTable) -> [(String, TableDefinition.Kind)] {
        table.definition.ordered.map { ($0.name, $0.kind) }
    }

    /// `CREATE TABLE IF NOT EXISTS` from the catalogue, with its indexes (named `ix_TABLE_NAME`: index names are per
    /// schema in PostgreSQL) and its comments.
    public static func createSQL(_ definition: TableDefinition) -> String {
        let table = id(definition.name)
        var lines = definition.ordered.map { column in
            "  \(id(column.name)) \(type(column.kind, length: column.length)) \(column.nullable ? "NULL" : "NOT NULL")"
                + (column.defaultsToNow ? " DEFAULT now()" : "")
        }
        lines.append("  PRIMARY KEY (" + definition.key.map(id).joined(separator: ", ") + ")")
        var statements = ["CREATE TABLE IF NOT EXISTS \(table) (\n" + lines.joined(separator: ",\n") + "\n)"]
        statements += definition.indexes.map { index in
            "CREATE INDEX IF NOT EXISTS \(id("ix_\(definition.name)_\(index.name)")) ON \(table) (" + index.columns.map(id).joined(separator: ", ") + ")"
        }
        statements.append("COMMENT ON TABLE \(table) IS \(literal(definition.comment))")
        statements += definition.ordered.compactMap { column in
            column.comment.map { "COMMENT ON COLUMN \(table).\(id(column.name)) IS \(literal($0))" }
        }
        return statements.joined(separator: ";\n")
    }

    /// A string literal of the project's own text.
    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
}

extension PostgresConnection {
    /// One batch as one transaction: `COPY` into the session's temporary staging table of `table`, then
    /// `INSERT … SELECT … ON CONFLICT (key) DO UPDATE` of every other column, so a row read again replaces its values
    /// and a row the table cannot hold fails the whole batch.
    /// With `keepStoredWhenNull`, a NULL in the batch keeps the stored value (`COALESCE`).
    func upsert(into table: String, columns: [String], key: [String], copyText: [UInt8], context: String, keepStoredWhenNull: Bool = false,
                notify: [Notification] = [], accumulate: Set<String> = []) throws {
        let stage = "bx_stage_\(table)"
        let target = Self.identifier(table)
        if !stagingTables.contains(stage) {
            // Emptied at every commit, so each batch starts from nothing; lives as long as the session. Created outside
            // the batch's transaction: DDL is transactional, and a rolled-back batch would take it along.
            try execute("CREATE TEMPORARY TABLE IF NOT EXISTS \(Self.identifier(stage)) (LIKE \(target) INCLUDING DEFAULTS) ON COMMIT DELETE ROWS", context: context)
            stagingTables.insert(stage)
        }
        let list = columns.map(Self.identifier).joined(separator: ", ")
        let updates = columns.filter { !key.contains($0) }.map { column in
            let c = Self.identifier(column)
            if accumulate.contains(column) { return "\(c) = \(target).\(c) + EXCLUDED.\(c)" }
            return keepStoredWhenNull ? "\(c) = COALESCE(EXCLUDED.\(c), \(target).\(c))" : "\(c) = EXCLUDED.\(c)"
        }.joined(separator: ", ")
        try transaction(context: context) {
            try copy(into: stage, columns: columns, text: copyText, context: context)
            try execute("INSERT INTO \(target) (\(list)) SELECT \(list) FROM \(Self.identifier(stage)) "
                        + "ON CONFLICT (\(key.map(Self.identifier).joined(separator: ", "))) DO UPDATE SET \(updates)", context: context)
            // Delivered when the batch commits, and only then.
            for notification in notify { try send(notification, context: context) }
        }
    }

    /// A `NOTIFY` on `channel` with `payload` (PostgreSQL delivers it to the channel's listeners when the
    /// transaction commits; outside one, at once).
    public struct Notification: Sendable, Equatable {
        public let channel: String
        public let payload: String
        public init(channel: String, payload: String) {
            self.channel = channel
            self.payload = payload
        }
    }

    func send(_ notification: Notification, context: String) throws {
        _ = try query("SELECT pg_notify($1, $2)", [notification.channel, notification.payload], context: context)
    }

    /// `LISTEN channel`: this session receives the channel's notifications (`notifications()`).
    public func listen(_ channel: String) throws {
        try execute("LISTEN \(Self.identifier(channel))", context: "listening on \(channel)")
    }

    /// The notifications that arrived for this session's channels since the last call (none waits).
    public func notifications() -> [Notification] {
        pollNotifications()
    }

    /// The decimal digits of `value` (with `-` when negative), without an intermediate string.
    static func appendDigits(_ value: Int64, into out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var v = value.magnitude
        let start = out.count
        repeat {
            out.append(UInt8(truncatingIfNeeded: 0x30 + v % 10))
            v /= 10
        } while v > 0
        out[start...].reverse()
    }

    /// One row of COPY's text format: fields tab-separated (nil is `\N`), ended by a newline.
    static func copyRow(_ fields: [String?], into out: inout [UInt8]) {
        for (i, field) in fields.enumerated() {
            if i > 0 { out.append(0x09) }
            copyField(field, into: &out)
        }
        out.append(0x0A)
    }

    /// The newest value of a time column for `symbol`, in Unix ms, or nil when nothing is stored.
    func newestTime(_ column: String, table: String, symbol: Symbol) throws -> Int64? {
        let rows = try query("SELECT (extract(epoch FROM max(\(Self.identifier(column)))) * 1000)::bigint FROM \(Self.identifier(table)) WHERE \"symbol\" = $1",
                             [symbol.name], context: "reading \(table)")
        guard let text = rows.first?.first ?? nil else { return nil }
        return Int64(text)
    }
}

/// Funding rates in PostgreSQL's `funding_rates`.
public struct PostgresFundingStore: FundingStoring {
    public let pool: PostgresPool
    /// `funding_rates`, or `coinm_funding_rates`.
    public let table: String
    public init(pool: PostgresPool, table: String = FundingTable.name) {
        self.pool = pool
        self.table = table
    }

    public func table(for market: Market) -> any FundingStoring { PostgresFundingStore(pool: pool, table: FundingTable.name(for: market)) }

    static let columns = ["symbol", "funding_time", "funding_rate", "mark_price"]

    public func lastFundingTime(symbol: Symbol) async throws -> Int64? {
        try await pool.withConnection { try $0.newestTime("funding_time", table: table, symbol: symbol) }
    }

    public func write(symbol: Symbol, rows: [FundingRate]) async throws -> Int {
        guard !rows.isEmpty else { return 0 }
        var text: [UInt8] = []
        for r in rows { PostgresConnection.copyRow([symbol.name, UTCCalendar.iso8601(r.fundingTime), r.fundingRate.text, r.markPrice?.text], into: &text) }
        let context = "writing \(rows.count) funding rates of \(symbol) to \(table)"
        try await postgresSpan(pool, "INSERT", table, batchSize: rows.count) {
            try await pool.withConnection { [text] in
                try $0.upsert(into: table, columns: Self.columns, key: ["symbol", "funding_time"], copyText: text, context: context)
            }
        }
        return rows.count
    }

    /// Every stored funding rate of a symbol, oldest first: (time, rate, mark price or nil), as PostgreSQL prints them.
    public func all(symbol: Symbol) async throws -> [(Int64, String, String?)] {
        let rows = try await pool.withConnection {
            try $0.query("SELECT (extract(epoch FROM \"funding_time\") * 1000)::bigint, \"funding_rate\"::text, \"mark_price\"::text FROM \(PostgresConnection.identifier(table)) "
                         + "WHERE \"symbol\" = $1 ORDER BY \"funding_time\"", [symbol.name], context: "reading \(table)")
        }
        return rows.compactMap { r in
            guard r.count == 3, let time = r[0].flatMap({ Int64($0) }), let rate = r[1] else { return nil }
            return (time, rate, r[2])
        }
    }
}

/// Open interest and trader ratios in PostgreSQL's `futures_metrics`.
public struct PostgresMetricsStore: MetricsStoring {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    static let columns = ["symbol", "metric_time"] + FuturesMetrics.valueColumns

    public func lastMetricTime(symbol: Symbol) async throws -> Int64? {
        try await pool.withConnection { try $0.newestTime("metric_time", table: MetricsTable.name, symbol: symbol) }
    }

    public func write(symbol: Symbol, rows: [FuturesMetric]) async throws -> Int {
        guard !rows.isEmpty else { return 0 }
        var text: [UInt8] = []
        for r in rows { PostgresConnection.copyRow([symbol.name, UTCCalendar.iso8601(r.time)] + r.values.map { $0?.text }, into: &text) }
        let context = "writing \(rows.count) metrics rows of \(symbol) to \(MetricsTable.name)"
        try await postgresSpan(pool, "INSERT", MetricsTable.name, batchSize: rows.count) {
            try await pool.withConnection { [text] in
                try $0.upsert(into: MetricsTable.name, columns: Self.columns, key: ["symbol", "metric_time"], copyText: text, context: context,
                              keepStoredWhenNull: true)
            }
        }
        return rows.count
    }
}

/// Aggregate trades in PostgreSQL's `agg_trades` / `spot_agg_trades`.
///
/// A batch goes by plain COPY straight into the table while its series (table and symbol) has met no stored trade:
/// trade ids only grow, and a backfill asks each id once, so a new series' batches never overlap. A COPY that meets a
/// stored id fails on the primary key (23505) and leaves nothing; that batch and the rest of the series then go
/// through the staging-table upsert, which overwrites what is stored.
public struct PostgresTradeStore: TradeStoring {
    public let pool: PostgresPool
    /// Series that met a stored trade: upserts only.
    private let overlapping = SeriesSet()
    public init(pool: PostgresPool) { self.pool = pool }

    static func columns(_ table: TradeTable) -> [String] {
        ["symbol", "agg_trade_id", "price", table.quantityColumn, "first_trade_id", "last_trade_id", "trade_time", "is_buyer_maker"]
    }

    public func lastTradeId(table: TradeTable, symbol: Symbol) async throws -> Int64? {
        let rows = try await pool.withConnection {
            try $0.query("SELECT max(\"agg_trade_id\") FROM \(PostgresConnection.identifier(table.name)) WHERE \"symbol\" = $1", [symbol.name],
                         context: "reading \(table.name)")
        }
        guard let text = rows.first?.first ?? nil else { return nil }
        return Int64(text)
    }

    public func lastTradeTime(table: TradeTable, symbol: Symbol) async throws -> Int64? {
        // Times never go backwards as ids grow (Binance, "Compressed/Aggregate Trades List"): the newest time is the last trade's.
        try await pool.withConnection { try $0.newestTime("trade_time", table: table.name, symbol: symbol) }
    }

    public func write(table: TradeTable, symbol: Symbol, trades: [AggTrade]) async throws -> Int {
        guard !trades.isEmpty else { return 0 }
        let text = TradeText.lines(symbol: symbol, trades: trades, time: .iso8601, yes: 0x74, no: 0x66)
        let (name, columns) = (table.name, Self.columns(table))
        let context = "writing \(trades.count) aggregate trades of \(symbol) to \(name)"
        if !overlapping.contains(name, symbol.name) {
            do {
                try await postgresSpan(pool, "COPY", name, batchSize: trades.count) {
                    try await pool.withConnection { [text] in try $0.copy(into: name, columns: columns, text: text, context: context) }
                }
                return trades.count
            } catch let error as PostgresError where error.sqlState == "23505" {
                overlapping.insert(name, symbol.name)
            }
        }
        try await postgresSpan(pool, "INSERT", name, batchSize: trades.count) {
            try await pool.withConnection { [text] in
                try $0.upsert(into: name, columns: columns, key: ["symbol", "agg_trade_id"], copyText: text, context: context)
            }
        }
        return trades.count
    }

    /// Stored ids and times of a symbol, in id order (for checks).
    public func ids(table: TradeTable, symbol: Symbol) async throws -> [(Int64, Int64)] {
        let rows = try await pool.withConnection {
            try $0.query("SELECT \"agg_trade_id\", (extract(epoch FROM \"trade_time\") * 1000)::bigint FROM \(PostgresConnection.identifier(table.name)) "
                         + "WHERE \"symbol\" = $1 ORDER BY \"agg_trade_id\"", [symbol.name], context: "reading \(table.name)")
        }
        return rows.compactMap { r in
            guard r.count == 2, let id = r[0].flatMap({ Int64($0) }), let time = r[1].flatMap({ Int64($0) }) else { return nil }
            return (id, time)
        }
    }
}

/// A CLIENT span for one statement on PostgreSQL.
func postgresSpan<T>(_ pool: PostgresPool, _ operation: String, _ collection: String, batchSize: Int? = nil,
                     _ body: () async throws -> T) async throws -> T {
    try await databaseSpan(system: "postgresql", namespace: pool.uri.database, host: pool.uri.host, port: pool.uri.port,
                           operation, collection, batchSize: batchSize, body)
}
