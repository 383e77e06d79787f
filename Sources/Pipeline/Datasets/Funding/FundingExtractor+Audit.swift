import BinanceAPI
import BinanceArchive
import StoreKit

/// `audit` of a funding table: matched on `funding_time`, REST paged as a run pages it. Funding has no archive files
/// the project reads.
extension FundingExtractor: AuditableWork {
    public var auditTable: AuditedTable<FundingRate> {
        // COIN-M's perpetuals are the only contracts named `PAIR_PERP` with funding (USD-M's perpetuals carry no suffix).
        AuditedTable(definition: FundingTable.definition(for: symbol.name.hasSuffix("_PERP") ? .coinm : .futures),
                     keyColumn: "funding_time", key: \.fundingTime) { rate in
            [String(rate.fundingTime), Canonical.decimal(rate.fundingRate.text), rate.markPrice.map { Canonical.decimal($0.text) }]
        }
    }

    public func reference(from: Int64, to: Int64, sample: Bool, into writer: BatchWriter<FundingRate>,
                          outcome: inout UnitOutcome) async throws -> (after: Int64, through: Int64)? {
        let end = min(to, clock.now())
        guard end >= from else { return nil }
        try await fetch(from...end, into: writer, outcome: &outcome)
        return (from - 1, end)
    }

    public func fileFormat(_ file: ArchiveFile) -> ArchiveRowFormat<FundingRate>? { nil }
}
