import BinanceAPI
import BinanceArchive
import Foundation
import Logging
import Pipeline
import StoreKit

/// One `audit`: the recheck of the recorded archive files, the comparison with REST, and the holes' labels, gathered
/// into one report.
struct AuditRun: Sendable {
    let config: AuditConfiguration
    let resources: JobResources
    let tables: PreparedTables
    let reader: any AuditReading
    let coverage: any CoverageReading
    let klineTables: [KlineTable]
    let others: [TableDefinition]
    let logger: Logger

    /// A table audited, and how its rows are fetched.
    enum Audited: Sendable {
        case klines(KlineTable)
        case funding(Market)
        case metrics
        case trades(TradeTable)

        var name: String {
            switch self {
            case .klines(let t): t.name
            case .funding(let m): FundingTable.name(for: m)
            case .metrics: MetricsTable.name
            case .trades(let t): t.name
            }
        }

        var timeColumn: String {
            switch self {
            case .klines: "open_time"
            case .funding: "funding_time"
            case .metrics: "metric_time"
            case .trades: "trade_time"
            }
        }
    }

    var audited: [Audited] {
        klineTables.map { .klines($0) } + others.compactMap { table in
            if table.name == MetricsTable.name { return .metrics }
            if let market = [Market.futures, .coinm].first(where: { FundingTable.name(for: $0) == table.name }) { return .funding(market) }
            if let market = Market.allCases.first(where: { TradeTable(market: $0).name == table.name }) { return .trades(TradeTable(market: market)) }
            return nil
        }
    }

    func run() async throws -> AuditReport {
        let findings = AuditFindings(maxListed: config.maxListed)
        var report = AuditReport()
        let weightBefore = await resources.client.limiter.weightGranted
        if config.recheck { try await recheck(into: &report, findings: findings) }
        if config.compare { try await compare(into: &report, findings: findings) }
        try await labelHoles(into: &report, findings: findings)
        report.totals = await findings.totals
        report.weight = await resources.client.limiter.weightGranted - weightBefore
        return report
    }

    // MARK: the comparison with REST

    /// One table and symbol's stretches to compare.
    struct Job: Sendable {
        let table: Audited
        let symbol: Symbol
        let windows: [ClosedRange<Int64>]
    }

    func compare(into report: inout AuditReport, findings: AuditFindings) async throws {
        var jobs: [Job] = []
        for table in audited {
            let idColumn: String? = if case .trades = table { "agg_trade_id" } else { nil }
            let spans = try await coverage.spans(table: table.name, timeColumn: table.timeColumn, idColumn: idColumn, symbols: config.symbols)
            var stored: [String: ClosedRange<Int64>] = [:]
            for row in spans where row.count >= 3 {
                if let symbol = row[0], let first = row[1].flatMap({ Int64($0) }), let last = row[2].flatMap({ Int64($0) }), first <= last {
                    stored[symbol] = first...last
                }
            }
            let symbols = config.symbols.map { $0.map(\.name) } ?? stored.keys.sorted()
            for name in symbols {
                guard let symbol = try? Symbol(validating: name) else {
                    await findings.skip("\(table.name) \(name.prefix(40)): not a Binance symbol")
                    continue
                }
                if let range = config.range {
                    jobs.append(Job(table: table, symbol: symbol, windows: [range]))
                } else if let span = stored[name] {
                    jobs.append(Job(table: table, symbol: symbol, windows: AuditSampling.days(span, count: config.sample, seed: config.seed ^ AuditSampling.hash(table.name + " " + name))))
                }
            }
        }
        let failures = try await withThrowingTaskGroup(of: String?.self) { group in
            var pending = jobs[...]
            var failures: [String] = []
            for _ in 0..<max(1, config.common.maxWorkers) {
                guard let job = pending.popFirst() else { break }
                group.addTask { await run(job, findings: findings) }
            }
            while let failure = try await group.next() {
                if let failure { failures.append(failure) }
                if let job = pending.popFirst() { group.addTask { await run(job, findings: findings) } }
            }
            return failures
        }
        report.failures += failures
    }

    /// Compares one job's stretches; returns why it could not, or nil.
    func run(_ job: Job, findings: AuditFindings) async -> String? {
        do {
            for window in job.windows {
                try Task.checkCancellation()
                let answered = try await Auditor.compareWithREST(work(for: job.table, job.symbol), symbol: job.symbol.name, from: window.lowerBound,
                                                                 to: window.upperBound, sample: config.range == nil, reader: reader, fix: config.fix,
                                                                 keepStored: config.keepStored, findings: findings)
                if answered == nil {
                    await findings.skip("\(job.table.name) \(job.symbol) \(UTCCalendar.iso8601(window.lowerBound)): REST has nothing there to compare with"
                                        + (job.table.name == MetricsTable.name ? " (it keeps 30 days of metrics)" : ""))
                }
            }
            return nil
        } catch {
            logger.error("audit of a table and symbol failed", metadata: ["table": "\(job.table.name)", "symbol": "\(job.symbol)", "error": "\(error)"])
            return "\(job.table.name) \(job.symbol): \(error)"
        }
    }

    /// The dataset that holds `table`, for `symbol`: its REST fetch, its rows' values and its files (`AuditableWork`).
    func work(for table: Audited, _ symbol: Symbol) throws -> any AuditableWork {
        let (client, clock, logger) = (resources.client, resources.clock, resources.logger)
        switch table {
        case .klines(let kline):
            return SymbolExtractor(unit: ExtractionUnit(market: kline.market, symbol: symbol, interval: kline.interval, series: kline.series), source: client,
                                   store: tables.klines, clock: clock, settings: .init(batchSize: 1000), logger: logger)
        case .funding(let market):
            guard let funding = tables.funding else { throw ConfigurationError("this store keeps no funding rates") }
            return FundingExtractor(symbol: symbol, client: client, store: funding.table(for: market), clock: clock, lookbackMilliseconds: 0,
                                    explicitRange: nil, batchSize: 1000)
        case .metrics:
            guard let metrics = tables.metrics else { throw ConfigurationError("this store keeps no metrics") }
            return MetricsExtractor(unit: ExtractionUnit(market: .futures, symbol: symbol, dataset: .metrics), client: client, store: metrics, clock: clock,
                                    lookbackMilliseconds: 0, explicitRange: nil, batchSize: 1000, sourceMode: .rest, archive: nil, dryRun: false, logger: logger)
        case .trades(let trades):
            guard let store = tables.trades else { throw ConfigurationError("this store keeps no trades") }
            return TradeExtractor(market: trades.market, symbol: symbol, client: client, store: store, clock: clock, startTime: 0, batchSize: 1000,
                                  maxPages: .max, dryRun: false, logger: logger)
        }
    }

    // MARK: the recheck of recorded files

    func recheck(into report: inout AuditReport, findings: AuditFindings) async throws {
        guard let archive = resources.archive(.auto, config.archive) else { throw ConfigurationError("no HTTP client for the archive host") }
        let names = Set(audited.map(\.name))
        let records = try await reader.ledgerFiles().compactMap(ArchiveFileRecord.init(stored:)).filter { record in
            record.market == config.common.market && names.contains(record.table) && (config.symbols?.contains { $0.name == record.symbol } ?? true)
        }
        var files: [(ArchiveFileRecord, ArchiveFile)] = []
        for record in records {
            guard let file = ArchiveFile(market: record.market, datasetFolder: record.dataset, symbol: record.symbol, series: record.series, period: record.period),
                  file.path == record.path else {
                await findings.skip("\(record.path.prefix(200)): not a file this build reads")
                continue
            }
            files.append((record, file))
        }
        // The HEADs, a few at a time (they cost no weight; the archive host's latency sets the pace).
        let answers = try await heads(files.map(\.1), archive: archive)
        let failed = answers.filter { $0.failure != nil }.count
        report.filesRechecked = files.count - failed
        var named = 0
        for ((record, file), answer) in zip(files, answers) {
            try Task.checkCancellation()
            if let failure = answer.failure {
                // The first few by name; an unreachable host fails them all alike.
                named += 1
                if named <= 5 { report.failures.append("\(record.path): HEAD failed (\(failure))") }
                if named == 6 { report.failures.append("\(failed - 5) more files: HEAD failed") }
                continue
            }
            let now = answer.facts
            guard let now else {
                report.filesGone.append(record.path)
                continue
            }
            let recorded = ArchiveFacts(size: record.size, etag: record.etag, lastModified: record.lastModified)
            guard now.differs(from: recorded) else { continue }
            let (read, changed) = try await reread(file, table: record.table, archive: archive, findings: findings)
            guard case .rows(let count, let facts) = read else {
                report.failures.append("\(record.path): changed on the archive host, but could not be read again (\(read.label))")
                continue
            }
            report.filesChanged.append(AuditReport.ChangedFile(path: record.path, rowsChanged: changed, etag: facts.etag, lastModified: facts.lastModified))
            var updated = record
            (updated.size, updated.etag, updated.lastModified) = (facts.size, facts.etag, facts.lastModified)
            updated.sha256 = facts.sha256 ?? record.sha256
            (updated.rowsRead, updated.readAt) = (count, resources.clock.now())
            try await resources.ledger?.record(files: [updated])
        }
    }

    /// What a HEAD of a recorded file answered: its validators, nil facts for a file no longer there, or why it failed.
    struct HeadAnswer: Sendable {
        var index = 0
        var facts: ArchiveFacts?
        var failure: String?
    }

    /// HEADs of `files`, `2 x --max-workers` at a time, in the files' order. Each child returns one struct carrying its
    /// index: Swift 6.3's release build handed back an `(Int, HeadAnswer)` tuple result with the Int garbled (measured
    /// here; the debug build was right).
    func heads(_ files: [ArchiveFile], archive: ArchiveClient) async throws -> [HeadAnswer] {
        let width = max(1, config.common.maxWorkers * 2)
        var answers = files.indices.map { HeadAnswer(index: $0, failure: "no answer") }
        try await withThrowingTaskGroup(of: HeadAnswer.self) { group in
            for (index, file) in files.enumerated() {
                if index >= width, let answer = try await group.next() { answers[answer.index] = answer }
                group.addTask {
                    do { return HeadAnswer(index: index, facts: try await archive.head(file)) } catch { return HeadAnswer(index: index, failure: "\(error)") }
                }
            }
            for try await answer in group { answers[answer.index] = answer }
        }
        return answers
    }

    /// Reads a changed file again through the dataset its table holds.
    func reread(_ file: ArchiveFile, table: String, archive: any ArchiveSource, findings: AuditFindings) async throws -> (read: ArchiveRead, changed: Int) {
        guard let audited = audited.first(where: { $0.name == table }) else { return (.absent, 0) }
        return try await Auditor.reread(work(for: audited, file.symbol), file: file, archive: archive, reader: reader, findings: findings)
    }

    // MARK: holes

    func labelHoles(into report: inout AuditReport, findings: AuditFindings) async throws {
        let scope = Set(audited.map(\.name))
        for table in audited {
            switch table {
            case .klines(let kline):
                try await gridded(kline, into: &report, findings: findings)
            case .metrics:
                try await gridded(MetricsTable(), into: &report, findings: findings)
            case .trades(let trades):
                for row in try await coverage.idJumps(table: trades.name, symbols: config.symbols) where row.count >= 2 {
                    guard let symbol = row[0], let count = row[1].flatMap({ Int($0) }), count > 0 else { continue }
                    report.holes.append(AuditReport.Holes(table: trades.name, symbol: symbol, label: "local_miss", ranges: count, rows: nil))
                }
            case .funding:
                continue
            }
        }
        for total in try await reader.sources() where total.source == .archiveHole && scope.contains(total.table)
            && config.symbols?.contains(where: { $0.name == total.symbol }) ?? true {
            report.holes.append(AuditReport.Holes(table: total.table, symbol: total.symbol, label: "archive_hole", ranges: total.days, rows: total.rows))
        }
        report.holes.sort { ($0.table, $0.symbol, $0.label) < ($1.table, $1.symbol, $1.label) }
    }

    /// A table on a grid: each hole between stored rows is Binance's (confirmed empty before, or by this audit: REST
    /// was asked for all of it and had nothing) or ours (not fetched yet).
    private func gridded(_ table: any GapTable, into report: inout AuditReport, findings: AuditFindings) async throws {
        let confirmed = try await coverage.gaps.confirmed(table: table)
        let holes = try await coverage.gaps.holes(table: table, symbols: config.symbols, since: nil)
        for (symbol, found) in Dictionary(grouping: holes, by: \.symbol).sorted(by: { $0.key < $1.key }) {
            var downtime: [KlineHole] = [], missed: [KlineHole] = []
            for hole in found {
                if confirmed.contains(hole) {
                    downtime.append(hole)
                } else if await findings.restHasNone(table: table.name, symbol: symbol, hole: hole.from...hole.to) {
                    downtime.append(hole)
                } else {
                    missed.append(hole)
                }
            }
            if !downtime.isEmpty {
                report.holes.append(AuditReport.Holes(table: table.name, symbol: symbol, label: "exchange_downtime", ranges: downtime.count,
                                                      rows: downtime.reduce(0) { $0 + $1.missing }))
            }
            if !missed.isEmpty {
                report.holes.append(AuditReport.Holes(table: table.name, symbol: symbol, label: "local_miss", ranges: missed.count,
                                                      rows: missed.reduce(0) { $0 + $1.missing }))
            }
        }
    }
}

