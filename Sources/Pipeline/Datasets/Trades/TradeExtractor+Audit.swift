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
        var nextId = firstId, lastId = firstId - 1
        while true {
            try Task.checkCancellation()
            var page = try await client.aggTrades(symbol: symbol, fromId: nextId)
            outcome.requests += 1
            guard page.first.map({ $0.id >= nextId }) ?? true, zip(page, page.dropFirst()).allSatisfy({ $0.id < $1.id }) else {
                throw BinanceError.malformedBody("aggregate trades out of order or before fromId \(nextId)")
            }
            let full = page.count >= AggTrade.maxLimit
            page.removeAll { $0.time > to }
            guard let last = page.last else { break }
            try await writer.append(page)
            lastId = last.id
            nextId = last.id + 1
            if sample || !full || page.count < AggTrade.maxLimit { break }
        }
        return lastId >= firstId ? (firstId - 1, lastId) : nil
    }

    public func fileFormat(_ file: ArchiveFile) -> ArchiveRowFormat<AggTrade>? {
        format(file, TradePlan(fromTime: file.range.lowerBound, until: min(file.range.upperBound - 1, clock.now()), runStart: clock.now()))
    }
}
