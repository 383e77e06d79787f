import BinanceAPI
import StoreKit

/// Holes in PostgreSQL's kline tables, found by the server with a window function (`lag(open_time) OVER
/// (PARTITION BY symbol ORDER BY open_time)`, which walks the primary key), so only the holes come back; and the
/// holes Binance itself has no candles for, in `kline_gaps_confirmed`.
public struct PostgresGapStore: GapStoring {
    public let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    public func holes(table: any GapTable, symbols: [Symbol]?, since: Int64?) async throws -> [KlineHole] {
        let interval = table.interval
        let time = PostgresConnection.identifier(table.timeColumn)
        // A fixed interval in milliseconds, or a calendar month.
        let step = interval.fixedMilliseconds.map { "interval '\($0) milliseconds'" } ?? "interval '1 month'"
        let name = PostgresConnection.identifier(table.name)
        var parameters: [String?] = []
        var filter = "true"
        if let symbols {
            parameters.append("{" + symbols.map(\.name).joined(separator: ",") + "}")
            filter += " AND \"symbol\" = ANY($\(parameters.count)::text[])"
        }
        if let since {
            parameters.append(String(since))
            filter += " AND \(time) >= 'epoch'::timestamptz + $\(parameters.count)::bigint * interval '1 millisecond'"
        }
        let between = """
            SELECT "symbol", (extract(epoch FROM "prev_time") * 1000)::bigint, (extract(epoch FROM \(time)) * 1000)::bigint
            FROM (SELECT "symbol", \(time), lag(\(time)) OVER (PARTITION BY "symbol" ORDER BY \(time)) AS "prev_time"
                  FROM \(name) WHERE \(filter)) AS w
            WHERE "prev_time" IS NOT NULL AND \(time) > "prev_time" + \(step)
            """
        // Before the first stored candle after `since`: NULL marks "from `since`".
        let before = since.map { since in
            """
            SELECT "symbol", NULL::bigint, (extract(epoch FROM min(\(time))) * 1000)::bigint FROM \(name) WHERE \(filter)
            GROUP BY "symbol" HAVING min(\(time)) > 'epoch'::timestamptz + \(interval.firstOpenTime(atOrAfter: since)) * interval '1 millisecond'
            """
        }
        let (sql, bound) = (before.map { between + " UNION ALL " + $0 } ?? between, parameters)
        let rows = try await span("SELECT", table.name) {
            try await pool.withConnection { try $0.query(sql, bound, context: "finding holes in \(table.name)") }
        }
        return KlineHole.holes(rows: rows, interval: interval, since: since)
    }

    public func confirmed(table: any GapTable) async throws -> Set<KlineHole> {
        let rows = try await pool.withConnection {
            try $0.query("""
                SELECT "symbol", (extract(epoch FROM "gap_start") * 1000)::bigint, (extract(epoch FROM "gap_end") * 1000)::bigint
                FROM "\(ConfirmedGapTable.name)" WHERE "table_name" = $1
                """, [table.name], context: "reading \(ConfirmedGapTable.name)")
        }
        return Set(rows.compactMap { r in
            guard r.count == 3, let s = r[0], let f = r[1].flatMap({ Int64($0) }), let t = r[2].flatMap({ Int64($0) }) else { return nil }
            return KlineHole(symbol: s, from: f, to: t, missing: table.interval.count(from: f, to: t))
        })
    }

    /// A hole recorded twice is one.
    public func recordConfirmed(table: any GapTable, holes: [KlineHole]) async throws {
        guard !holes.isEmpty else { return }
        let sql = "INSERT INTO \"\(ConfirmedGapTable.name)\" (\"table_name\", \"symbol\", \"gap_start\", \"gap_end\") "
            + "VALUES ($1, $2, $3::timestamptz, $4::timestamptz) ON CONFLICT DO NOTHING"
        let context = "recording \(holes.count) outages of \(table.name)"
        try await span("INSERT", ConfirmedGapTable.name, batchSize: holes.count) {
            try await pool.withConnection { db in
                try db.transaction(context: context) {
                    for hole in holes {
                        _ = try db.query(sql, [table.name, hole.symbol, UTCCalendar.iso8601(hole.from), UTCCalendar.iso8601(hole.to)], context: context)
                    }
                }
            }
        }
    }

    public func forget(table: any GapTable, symbols: [Symbol]?) async throws {
        var sql = "DELETE FROM \"\(ConfirmedGapTable.name)\" WHERE \"table_name\" = $1"
        var parameters: [String?] = [table.name]
        if let symbols {
            sql += " AND \"symbol\" = ANY($2::text[])"
            parameters.append("{" + symbols.map(\.name).joined(separator: ",") + "}")
        }
        let (statement, bound) = (sql, parameters)
        _ = try await pool.withConnection { try $0.query(statement, bound, context: "forgetting confirmed holes of \(table.name)") }
    }

    private func span<T>(_ operation: String, _ collection: String, batchSize: Int? = nil, _ body: () async throws -> T) async throws -> T {
        try await postgresSpan(pool, operation, collection, batchSize: batchSize, body)
    }
}
