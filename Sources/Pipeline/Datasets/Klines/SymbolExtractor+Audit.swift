import BinanceAPI
import BinanceArchive
import StoreKit

/// `audit` of a kline table (any series): matched on `open_time`; REST's candles are paged as a run pages them.
extension SymbolExtractor: AuditableWork {
    public nonisolated var auditTable: AuditedTable<Kline> {
        let isTrade = table.isTrade
        return AuditedTable(definition: table.definition, keyColumn: "open_time", key: \.openTime) { kline in
            // The table's order (`KlineTable.definition`): times, the decimal columns as the candle carries them, the count.
            var values: [String?] = [String(kline.openTime), String(kline.closeTime)]
            let decimals = [kline.open, kline.high, kline.low, kline.close]
                + (isTrade ? [kline.volume, kline.quoteAssetVolume, kline.takerBuyBaseAssetVolume, kline.takerBuyQuoteAssetVolume] : [])
            values += decimals.map { Canonical.decimal($0.text) }
            values.append(String(kline.numberOfTrades))
            return values
        }
    }

    public func reference(from: Int64, to: Int64, sample: Bool, into writer: BatchWriter<Kline>,
                          outcome: inout UnitOutcome) async throws -> (after: Int64, through: Int64)? {
        var previous: Int64?
        // The open candle is never compared: REST's is not final, and the copy never holds it.
        let lastClosed = interval.openTime(containing: interval.openTime(containing: clock.now()) - 1)
        let end = min(to, lastClosed)
        guard end >= from else { return nil }
        try await fetch(plan: FetchPlan(start: from, end: end, origin: .explicit), into: writer, outcome: &outcome, previous: &previous)
        return (from - 1, end)
    }

    public nonisolated func fileFormat(_ file: ArchiveFile) -> ArchiveRowFormat<Kline>? {
        format(file, KlinePlan(range: FetchPlan(start: file.range.lowerBound, end: file.range.upperBound - 1, origin: .explicit), previous: nil))
    }
}
