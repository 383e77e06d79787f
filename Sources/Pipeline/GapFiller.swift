import BinanceAPI
import Clocks
import Logging
import Storage

/// Fills the holes of one symbol's klines in one table through the same pipeline as `klines` (a
/// `SymbolExtractor` per hole, the same rate limiter and writer). Binance's answer for a hole is authoritative:
/// whatever part of it is still missing after a successful fetch has no candles on Binance's side (an outage,
/// before listing, after delisting) and is recorded as confirmed, so it is not asked for again. With `--source auto`
/// a large hole's whole closed days and months come from the archives, as for `klines`.
public struct GapFiller: Sendable {
    public let unit: ExtractionUnit
    public let holes: [KlineHole]
    let client: BinanceClient
    let store: any KlineStoring
    let gaps: (any GapStoring)?
    let clock: any WallClock
    let batchSize: Int
    /// `--source`: a hole's whole closed days and months come from the archives (see `ArchivePlanner`).
    let sourceMode: KlinesSourceMode
    let archive: (any ArchiveSource)?
    let logger: Logger

    public init(unit: ExtractionUnit, holes: [KlineHole], client: BinanceClient, store: any KlineStoring, gaps: (any GapStoring)?,
                clock: any WallClock, batchSize: Int, sourceMode: KlinesSourceMode = .rest, archive: (any ArchiveSource)? = nil,
                logger: Logger) {
        self.sourceMode = sourceMode
        self.archive = archive
        self.unit = unit
        self.holes = holes
        self.client = client
        self.store = store
        self.gaps = gaps
        self.clock = clock
        self.batchSize = batchSize
        self.logger = logger
    }

    /// Runs one attempt; a retry skips the holes an earlier attempt filled and starts inside the one it was in.
    public func run(_ attempt: UnitAttempt = .first) async throws -> SymbolExtractor.Outcome {
        var total = SymbolExtractor.Outcome()
        let interval = unit.interval!
        let table = unit.table!
        let written = attempt.resumeAfter ?? .min
        for hole in holes.sorted(by: { $0.from < $1.from }) where hole.to > written {
            try Task.checkCancellation()
            let klinesUnit = ExtractionUnit(market: unit.market, symbol: unit.symbol, interval: interval, series: unit.series)
            let resumed = written >= hole.from
            let planner = RangePlanner(explicitStart: resumed ? written + 1 : hole.from, explicitEnd: hole.to + 1)
            let outcome: SymbolExtractor.Outcome
            do {
                outcome = try await SymbolExtractor(unit: klinesUnit, source: client, store: store, clock: clock,
                                                    settings: .init(planner: planner, batchSize: batchSize, sourceMode: sourceMode, archive: archive),
                                                    logger: logger).run()
            } catch let failure as UnitFailure {
                total.absorb(failure.partial)
                throw UnitFailure(underlying: failure.underlying, partial: total)
            }
            total.absorb(outcome)
            if outcome.interrupted { total.interrupted = true; return total }
            // What is still missing inside the hole, Binance does not have.
            if let gaps {
                let remaining = try await gaps.holes(table: table, symbols: [unit.symbol], since: hole.from)
                    .filter { $0.from >= hole.from && $0.to <= hole.to }
                let confirmed = outcome.fetched == 0 && !resumed ? [hole] : remaining
                try await gaps.recordConfirmed(table: table, holes: confirmed)
                if !confirmed.isEmpty {
                    logger.info("Binance has no candles for part of a hole; recorded so it is not asked again", metadata: [
                        "unit": "\(unit)", "holes": "\(confirmed.map(\.description))",
                    ])
                }
            }
        }
        return total
    }
}

/// Fills the holes of one symbol's `futures_metrics` with `MetricsExtractor` (files where a day has one, REST for
/// the last 30 days); what is still missing inside a hole after a successful fetch Binance does not have, and is recorded
/// as confirmed, as for klines.
public struct MetricsGapFiller: Sendable {
    public let unit: ExtractionUnit
    public let holes: [KlineHole]
    let client: BinanceClient
    let store: any MetricsStoring
    let gaps: (any GapStoring)?
    let clock: any WallClock
    let batchSize: Int
    let sourceMode: KlinesSourceMode
    let archive: (any ArchiveSource)?
    let logger: Logger

    public init(unit: ExtractionUnit, holes: [KlineHole], client: BinanceClient, store: any MetricsStoring, gaps: (any GapStoring)?,
                clock: any WallClock, batchSize: Int, sourceMode: KlinesSourceMode, archive: (any ArchiveSource)?, logger: Logger) {
        self.unit = unit
        self.holes = holes
        self.client = client
        self.store = store
        self.gaps = gaps
        self.clock = clock
        self.batchSize = batchSize
        self.sourceMode = sourceMode
        self.archive = archive
        self.logger = logger
    }

    public func run(_ attempt: UnitAttempt = .first) async throws -> SymbolExtractor.Outcome {
        var total = SymbolExtractor.Outcome()
        let written = attempt.resumeAfter ?? .min
        let table = MetricsTable()
        for hole in holes.sorted(by: { $0.from < $1.from }) where hole.to > written {
            try Task.checkCancellation()
            let resumed = written >= hole.from
            let outcome: SymbolExtractor.Outcome
            do {
                outcome = try await MetricsExtractor(unit: unit, client: client, store: store, clock: clock, lookbackMilliseconds: 0,
                                                     explicitRange: (resumed ? written + table.interval.nominalMilliseconds : hole.from)...hole.to,
                                                     batchSize: batchSize, sourceMode: sourceMode, archive: archive, dryRun: false, logger: logger).run()
            } catch let failure as UnitFailure {
                total.absorb(failure.partial)
                throw UnitFailure(underlying: failure.underlying, partial: total)
            }
            total.absorb(outcome)
            if outcome.interrupted { total.interrupted = true; return total }
            // `--source archive` leaves REST's days unasked: nothing is confirmed from a run that did not ask.
            guard let gaps, sourceMode != .archive else { continue }
            let remaining = try await gaps.holes(table: table, symbols: [unit.symbol], since: hole.from).filter { $0.from >= hole.from && $0.to <= hole.to }
            let confirmed = outcome.fetched == 0 && !resumed ? [hole] : remaining
            try await gaps.recordConfirmed(table: table, holes: confirmed)
            if !confirmed.isEmpty {
                logger.info("Binance has no metrics for part of a hole (no file, and older than REST keeps, or never published); recorded so it is not asked again",
                            metadata: ["unit": "\(unit)", "holes": "\(confirmed.map(\.description))"])
            }
        }
        return total
    }
}
