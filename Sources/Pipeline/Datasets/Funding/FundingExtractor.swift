import BinanceAPI
import Clocks
import StoreKit
import Telemetry

/// Fetches one symbol's funding rates: from the last stored funding time (it is read again, harmlessly), from the
/// lookback when nothing is stored, or over `--start`/`--end` whatever is stored; page by page of 1000, into its batch
/// writer.
public struct FundingExtractor: Sendable {
    public let symbol: Symbol
    let client: any FundingSource
    let store: any FundingStoring
    let clock: any WallClock
    let lookbackMilliseconds: Int64
    /// `--start`/`--end`: the rates of this range are fetched whatever is stored.
    let explicitRange: ClosedRange<Int64>?
    public let batchSize: Int
    /// Where the unit records its rows' sources (nil: nowhere); `table` names the market's funding table.
    public var recordsTo: (ledger: Ledger, table: String)?

    public init(symbol: Symbol, client: any FundingSource, store: any FundingStoring, clock: any WallClock, lookbackMilliseconds: Int64,
                explicitRange: ClosedRange<Int64>?, batchSize: Int) {
        self.symbol = symbol
        self.client = client
        self.store = store
        self.clock = clock
        self.lookbackMilliseconds = lookbackMilliseconds
        self.explicitRange = explicitRange
        self.batchSize = batchSize
    }

    /// Runs one attempt; a retry keeps the first attempt's range and starts after the last rate it wrote.
    public func run(_ attempt: UnitAttempt = .first) async throws -> UnitOutcome {
        try await UnitRunner.run(self, attempt)
    }
}

extension FundingExtractor: UnitWork {
    /// Funding times `[start, end]`.
    public func plan(_ attempt: UnitAttempt, outcome: inout UnitOutcome) async throws -> ClosedRange<Int64>? {
        if let previous = attempt.previous.plan {
            outcome.plan = previous
        } else {
            let now = clock.now()
            let last = try await store.lastFundingTime(symbol: symbol)
            let start = explicitRange?.lowerBound ?? last ?? (now - lookbackMilliseconds)
            outcome.plan = FetchPlan(start: start, end: explicitRange?.upperBound ?? now,
                                     origin: explicitRange != nil ? .explicit : last != nil ? .resume : .lookback, capped: false)
        }
        let end = outcome.plan?.end ?? clock.now()
        let start = max(outcome.plan?.start ?? end, attempt.resumeAfter.map { $0 + 1 } ?? .min)
        return start <= end ? start...end : nil
    }

    public func fetch(_ range: ClosedRange<Int64>, into writer: BatchWriter<FundingRate>, outcome: inout UnitOutcome) async throws {
        var cursor = range.lowerBound
        while cursor <= range.upperBound {
            try Task.checkCancellation()
            let page = try await client.fundingRates(symbol: symbol, startTime: cursor, endTime: range.upperBound)
            outcome.requests += 1
            guard let lastTime = page.last?.fundingTime else { break }
            guard page.first!.fundingTime >= cursor, zip(page, page.dropFirst()).allSatisfy({ $0.fundingTime < $1.fundingTime }) else {
                throw BinanceError.malformedBody("funding rates out of order or before startTime \(cursor)")
            }
            outcome.fetched += page.count
            try await writer.append(page)
            if page.count < FundingRate.maxLimit { break }
            cursor = lastTime + 1
        }
    }

    public func write(_ batch: [FundingRate]) async throws -> Int {
        let n = try await store.write(symbol: symbol, rows: batch)
        RunPipelineMetrics.current.written(fundingRates: n)
        return n
    }

    public var ledger: UnitLedger? {
        recordsTo.map { UnitLedger(ledger: $0.ledger, table: $0.table, symbol: symbol.name, clock: clock) }
    }

    public static func keys(_ row: FundingRate) -> (time: Int64, key: Int64) { (row.fundingTime, row.fundingTime) }
}
