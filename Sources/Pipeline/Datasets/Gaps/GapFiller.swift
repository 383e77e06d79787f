import BinanceAPI
import Clocks
import Logging
import StoreKit

/// Fills the holes of one symbol in one table through the same pipeline as the job that fills the table (a
/// `SymbolExtractor` per hole for klines, a `MetricsExtractor` for `futures_metrics`; the same rate limiter and
/// writer). Binance's answer for a hole is authoritative: whatever part of it is still missing after a successful fetch
/// has no data on Binance's side (an outage, before listing, after delisting; for metrics also a day with no file
/// older than REST keeps) and is recorded as confirmed, so it is not asked for again. With `--source auto` a large
/// hole's whole closed days (and months) come from the archives, as for the job itself.
public struct GapFiller: Sendable {
    public let unit: ExtractionUnit
    public let holes: [KlineHole]
    let table: any GapTable
    let gaps: (any GapStoring)?
    /// False where the run asked REST for nothing (`--source archive` on metrics): nothing can be confirmed from it.
    let confirms: Bool
    let what: String
    let logger: Logger
    /// Fetches the open times (or metric times) `[from, to]` of the unit's table.
    let fill: @Sendable (_ from: Int64, _ to: Int64) async throws -> UnitOutcome
    /// The part of a hole that Binance's REST answer covers, the only part that may be confirmed: a file can be
    /// published late or short and replaced later (binance-public-data #436), so what only a file holds is never
    /// recorded as Binance's to lack. Klines: the whole hole (REST keeps every candle); metrics: the last 30 days.
    let answerable: @Sendable (KlineHole) -> KlineHole?

    /// The holes of a kline table.
    public init(unit: ExtractionUnit, holes: [KlineHole], client: any KlineSource, store: any KlineStoring, gaps: (any GapStoring)?,
                clock: any WallClock, batchSize: Int, sourceMode: SourceMode = .rest, archive: (any ArchiveSource)? = nil,
                ledger: Ledger? = nil, logger: Logger) {
        self.unit = unit
        self.holes = holes
        table = unit.table ?? KlineTable(market: unit.market, interval: .m1)
        self.gaps = gaps
        confirms = true
        what = "candles"
        self.logger = logger
        let klinesUnit = ExtractionUnit(market: unit.market, symbol: unit.symbol, interval: unit.interval ?? .m1, series: unit.series)
        answerable = { $0 }
        fill = { from, to in
            let planner = RangePlanner(explicitStart: from, explicitEnd: to + 1)
            return try await SymbolExtractor(unit: klinesUnit, source: client, store: store, clock: clock,
                                             settings: .init(planner: planner, batchSize: batchSize, sourceMode: sourceMode, archive: archive, ledger: ledger),
                                             logger: logger).run()
        }
    }

    /// The holes of `futures_metrics`.
    public init(metrics unit: ExtractionUnit, holes: [KlineHole], client: any MetricsSource, store: any MetricsStoring, gaps: (any GapStoring)?,
                clock: any WallClock, batchSize: Int, sourceMode: SourceMode, archive: (any ArchiveSource)?, ledger: Ledger? = nil, logger: Logger) {
        self.unit = unit
        self.holes = holes
        table = MetricsTable()
        self.gaps = gaps
        confirms = sourceMode != .archive
        what = "metrics"
        self.logger = logger
        answerable = { hole in
            let step = FuturesMetrics.periodMilliseconds
            let floor = (FuturesMetrics.restFloor(now: clock.now()) + step - 1) / step * step
            guard hole.to >= max(hole.from, floor) else { return nil }
            let from = max(hole.from, floor)
            return KlineHole(symbol: hole.symbol, from: from, to: hole.to, missing: (hole.to - from) / step + 1)
        }
        fill = { from, to in
            var extractor = MetricsExtractor(unit: unit, client: client, store: store, clock: clock, lookbackMilliseconds: 0, explicitRange: from...to,
                                             batchSize: batchSize, sourceMode: sourceMode, archive: archive, dryRun: false, logger: logger)
            extractor.recordsTo = ledger
            return try await extractor.run()
        }
    }

    /// Runs one attempt; a retry skips the holes an earlier attempt filled and starts inside the one it was in.
    public func run(_ attempt: UnitAttempt = .first) async throws -> UnitOutcome {
        var total = UnitOutcome()
        let written = attempt.resumeAfter ?? .min
        for hole in holes.sorted(by: { $0.from < $1.from }) where hole.to > written {
            try Task.checkCancellation()
            let resumed = written >= hole.from
            let outcome: UnitOutcome
            do {
                outcome = try await fill(resumed ? written + 1 : hole.from, hole.to)
            } catch let failure as UnitFailure {
                total.absorb(failure.partial)
                throw UnitFailure(underlying: failure.underlying, partial: total)
            }
            total.absorb(outcome)
            if outcome.interrupted { total.interrupted = true; return total }
            // What is still missing inside the hole, Binance does not have: where its REST answer covers it, and only when
            // every source answered (an unreachable archive host confirms nothing).
            guard let gaps, confirms, !outcome.archiveUnreachable else { continue }
            let remaining = try await gaps.holes(table: table, symbols: [unit.symbol], since: hole.from).filter { $0.from >= hole.from && $0.to <= hole.to }
            let confirmed = (outcome.fetched == 0 && !resumed ? [hole] : remaining).compactMap(answerable)
            try await gaps.recordConfirmed(table: table, holes: confirmed)
            if !confirmed.isEmpty {
                logger.info("Binance has no \(what) for part of a hole; recorded so it is not asked again", metadata: [
                    "unit": "\(unit)", "holes": "\(confirmed.map(\.description))",
                ])
            }
        }
        return total
    }
}
