import Foundation
import BinanceAPI
import StoreKit

/// Klines in PostgreSQL: the same tables and columns as on MariaDB (`klines_m15`, `spot_klines_h1`, …), with
/// `numeric(38,18)` for prices and quantities, `timestamptz` for times and `PRIMARY KEY (symbol, open_time)`, so a
/// table can become a TimescaleDB hypertable or be partitioned by time without a change.
///
/// A batch is written as one transaction: its rows are copied (`COPY … FROM STDIN`) into a temporary staging table
/// of the session, then moved with `INSERT … SELECT … ON CONFLICT (symbol, open_time) DO UPDATE`, so a candle read
/// again (the one stored while open) is corrected and nothing is duplicated; a row the table cannot hold fails the
/// whole batch and leaves nothing of it.
///
/// A series (table and symbol) that held nothing when its unit read where it stands is written faster: COPY straight
/// into the table, as a fresh backfill's pages never overlap one another (the planner asks each open time once, and a
/// retry resumes after the last row written). Should another writer have stored the same rows meanwhile, the COPY fails
/// on the primary key, nothing of it stays, and that batch and the rest of the series go through the upsert.
public struct PostgresKlineStore: Sendable {
    public let pool: PostgresPool
    /// Series read as empty, written by plain COPY until a conflict says otherwise.
    private let fresh = SeriesSet()

    public init(pool: PostgresPool) { self.pool = pool }

    /// Creates the kline tables that are missing, and the confirmed-gaps table the extractor records outages in.
    public func create(_ tables: [KlineTable]) async throws {
        for definition in tables.map(\.definition) + [ConfirmedGapTable.definition] {
            let (name, sql) = (definition.name, PostgresTables.createSQL(definition))
            try await span("CREATE", name) {
                try await pool.withConnection { try $0.execute(sql, context: "creating \(name)") }
            }
        }
    }

    /// Open time (Unix ms) of the newest stored candle of `symbol`, or nil when none is stored (one index dive on the
    /// primary key).
    public func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64? {
        let newest = try await span("SELECT", table.name) {
            try await pool.withConnection { try $0.newestTime("open_time", table: table.name, symbol: symbol) }
        }
        guard let newest else {
            fresh.insert(table.name, symbol.name)
            return nil
        }
        fresh.remove(table.name, symbol.name)
        return newest
    }

    /// Writes `klines` of `symbol` as one transaction; returns the number of rows written. A series with nothing stored
    /// takes plain COPY; any other goes through the staging-table upsert of `upsert(table:groups:)`.
    @discardableResult
    public func upsert(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int {
        guard !klines.isEmpty else { return 0 }
        let (name, columns) = (table.name, table.columns)
        if fresh.contains(name, symbol.name) {
            let text = Self.copyText(table: table, symbol: symbol, klines: klines)
            let context = "writing \(klines.count) klines of \(symbol) to \(name)"
            let notification = Self.notification(table: table, symbol: symbol, klines: klines)
            do {
                try await span("COPY", name, batchSize: klines.count) {
                    try await pool.withConnection { [text] in
                        try $0.copy(into: name, columns: columns, text: text, context: context)
                        try $0.send(notification, context: context)
                    }
                }
                return klines.count
            } catch let error as PostgresError where error.sqlState == "23505" {
                // Rows of this series are there after all (another writer, a file read twice): upserts from now on.
                fresh.remove(name, symbol.name)
            }
        }
        return try await upsert(table: table, groups: [KlineGroup(symbol: symbol, klines: klines)])
    }

    /// Writes the candles of several symbols as one transaction (an upsert through the staging table), announcing
    /// each symbol's batch on the table's channel when it commits.
    public func upsert(table: KlineTable, groups: [KlineGroup]) async throws -> Int {
        let groups = groups.filter { !$0.klines.isEmpty }
        guard !groups.isEmpty else { return 0 }
        var text: [UInt8] = []
        for group in groups { text += Self.copyText(table: table, symbol: group.symbol, klines: group.klines) }
        let (name, columns) = (table.name, table.columns)
        let n = groups.reduce(0) { $0 + $1.klines.count }
        let context = "writing \(n) klines of \(groups.count == 1 ? "\(groups[0].symbol)" : "\(groups.count) symbols") to \(name)"
        let notifications = groups.map { Self.notification(table: table, symbol: $0.symbol, klines: $0.klines) }
        try await span("INSERT", name, batchSize: n) {
            try await pool.withConnection { [text] in
                try $0.upsert(into: name, columns: columns, key: ["symbol", "open_time"], copyText: text, context: context, notify: notifications)
            }
        }
        groups.forEach { fresh.remove(name, $0.symbol.name) }
        return n
    }

    /// Subscribers `LISTEN` on the table's name and hear of each committed batch: its symbol, newest open time and
    /// size, as JSON (the seed's event publishing: a reader reacts instead of polling).
    static func notification(table: KlineTable, symbol: Symbol, klines: [Kline]) -> PostgresConnection.Notification {
        PostgresConnection.Notification(channel: table.name, payload: "{\"symbol\":\"\(symbol.name)\",\"open_time\":\(klines.last?.openTime ?? 0),\"rows\":\(klines.count)}")
    }

    /// The batch in COPY's text format, columns in `table.columns` order; times as ISO 8601 in UTC. A price series'
    /// row is its times, open, high, low, close and count (carried in `numberOfTrades`).
    public static func copyText(table: KlineTable, symbol: Symbol, klines: [Kline]) -> [UInt8] {
        let trade = table.isTrade
        var out: [UInt8] = []
        out.reserveCapacity(klines.count * 256)
        // Field by field into one buffer: a backfill formats millions of rows. Symbols, times and Binance's decimals
        // hold no tab, newline or backslash (validated on the way in), so they need no escaping.
        let name = Array(symbol.name.utf8)
        func decimal(_ value: DecimalString) {
            out.append(0x09)
            out.append(contentsOf: value.text.utf8)
        }
        for k in klines {
            out.append(contentsOf: name); out.append(0x09)
            UTCCalendar.appendISO8601(k.openTime, into: &out); out.append(0x09)
            UTCCalendar.appendISO8601(k.closeTime, into: &out)
            decimal(k.open); decimal(k.high); decimal(k.low); decimal(k.close)
            if trade { decimal(k.volume); decimal(k.quoteAssetVolume) }
            out.append(0x09)
            PostgresConnection.appendDigits(k.numberOfTrades, into: &out)
            if trade { decimal(k.takerBuyBaseAssetVolume); decimal(k.takerBuyQuoteAssetVolume) }
            out.append(0x0A)
        }
        return out
    }

    /// Every stored kline of `symbol`, oldest first, with decimals as PostgreSQL prints them. A price series' candle
    /// reads as it is carried (`Kline(price:)`): its count in the trade count, volumes zero.
    public func klines(table: KlineTable, symbol: Symbol) async throws -> [StoredKline] {
        let decimals = table.isTrade ? table.decimalColumns.map { "\(PostgresConnection.identifier($0))::text" }
            : KlineTable.ohlcColumns.map { "\(PostgresConnection.identifier($0))::text" } + ["'0'", "'0'", "'0'", "'0'"]
        let sql = "SELECT (extract(epoch FROM \"open_time\") * 1000)::bigint, (extract(epoch FROM \"close_time\") * 1000)::bigint, "
            + "\(decimals.joined(separator: ", ")), \(PostgresConnection.identifier(table.countColumn)) FROM \(PostgresConnection.identifier(table.name)) "
            + "WHERE \"symbol\" = $1 ORDER BY \"open_time\""
        let rows = try await pool.withConnection { try $0.query(sql, [symbol.name], context: "reading \(table.name)") }
        return rows.compactMap { r in
            // Columns: open, close, then the decimals in `decimalColumns` order (prices, volumes, taker volumes), trades.
            guard r.count == 11, let open = r[0].flatMap({ Int64($0) }), let close = r[1].flatMap({ Int64($0) }),
                  let trades = r[10].flatMap({ Int64($0) }) else { return nil }
            let d = Array(r[2...9].map { $0 ?? "" })  // indexed from 0: open, high, low, close, volume, quote, taker base, taker quote
            return StoredKline(openTime: open, closeTime: close, open: d[0], high: d[1], low: d[2], close: d[3], volume: d[4],
                               quoteAssetVolume: d[5], numberOfTrades: trades, takerBuyBaseAssetVolume: d[6], takerBuyQuoteAssetVolume: d[7])
        }
    }

    private func span<T>(_ operation: String, _ collection: String, batchSize: Int? = nil, _ body: () async throws -> T) async throws -> T {
        try await postgresSpan(pool, operation, collection, batchSize: batchSize, body)
    }
}
extension PostgresKlineStore: KlineStoring {
    public func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int {
        try await upsert(table: table, symbol: symbol, klines: klines)
    }

    public func write(table: KlineTable, groups: [KlineGroup]) async throws -> Int {
        try await upsert(table: table, groups: groups)
    }

    /// Holes Binance answered with no candles for, kept so `gaps` does not ask again.
    public func recordOutages(table: KlineTable, holes: [KlineHole]) async throws {
        try await PostgresGapStore(pool: pool).recordConfirmed(table: table, holes: holes)
    }
}
