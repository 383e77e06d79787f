import BinanceAPI
import BinanceArchive
import StoreKit

/// `audit` of an aggregate trades table: matched by id. REST is asked by id from the first trade at or after the
/// stretch's start, page after page until the stretch ends (a sample: one page, 1000 ids).
extension TradeExtractor: AuditableWork {
    public var auditTable: AuditedTable<AggTrade> {
        AuditedTable(definition: TradeTable(market: market).definition, keyColumn: "agg_trade_id", key: \.id) { trade in
            [String(trade.id), Canonical.decimal(trade.price.text), Canonical.decimal(trade.quantity.text), String(trade.firstTradeId),
             String(trade.lastTradeId), String(trade.time), trade.isBuyerMaker ? "true" : "false"]
        }
    }

    public func reference(from: Int64, to: Int64, sample: Bool, into writer: BatchWriter<AggTrade>,
                          outcome: inout UnitOutcome) async throws -> (after: Int64, through: Int64)? {
        guard let firstId = try await firstTrade(from: from, to: to, outcome: &outcome) else { return nil }
        // Paged as a run pages them, with the stretch's end as the backfill's.
        var cursor = Cursor()
        (cursor.nextId, cursor.lastTime) = (firstId, to)
        try await page(&cursor, before: nil, until: to, writer: writer, outcome: &outcome, pageLimit: sample ? 1 : nil)
        try await writer.finish()
        guard let last = await writer.lastFlushed else { return nil }
        return (firstId - 1, last.id)
    }

    public func fileFormat(_ file: ArchiveFile) -> ArchiveRowFormat<AggTrade>? {
        format(file, TradePlan(fromTime: file.range.lowerBound, until: min(file.range.upperBound - 1, clock.now()), runStart: clock.now()))
    }
}
