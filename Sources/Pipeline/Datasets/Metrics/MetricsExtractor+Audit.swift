import BinanceAPI
import BinanceArchive
import StoreKit

/// `audit` of `futures_metrics`: matched on `metric_time`. REST keeps the last 30 days only
/// (`FuturesMetrics.restFloor`): older stretches cannot be compared, and are said to be skipped.
extension MetricsExtractor: AuditableWork {
    public var auditTable: AuditedTable<FuturesMetric> {
        AuditedTable(definition: MetricsTable.definition, keyColumn: "metric_time", key: \.time) { row in
            [String(row.time)] + row.values.map { $0.map { Canonical.decimal($0.text) } }
        }
    }

    public func reference(from: Int64, to: Int64, sample: Bool, into writer: BatchWriter<FuturesMetric>,
                          outcome: inout UnitOutcome) async throws -> (after: Int64, through: Int64)? {
        let step = Self.step
        let floor = (FuturesMetrics.restFloor(now: clock.now()) + step - 1) / step * step
        let start = max((from + step - 1) / step * step, floor)
        let end = min(to, (clock.now() / step - 1) * step)
        guard end >= start else { return nil }
        var plan = FetchPlan(start: start, end: end, origin: .explicit)
        try await rest(start, end, &plan, into: writer, outcome: &outcome)
        return (start - 1, end)
    }

    public func fileFormat(_ file: ArchiveFile) -> ArchiveRowFormat<FuturesMetric>? {
        format(file, FetchPlan(start: file.range.lowerBound, end: file.range.upperBound - 1, origin: .explicit))
    }
}
