import ArgumentParser
import BinanceAPI
import Clocks
import Foundation
import HTTPTransport
import Logging
import Pipeline
import PostgresStore
import StoreKit
import Telemetry
import Tracing

/// `binance-extractor coverage`.
struct CoverageCommand: ExtractorCommand {
    static let configuration = CommandConfiguration(
        commandName: "coverage",
        abstract: "Show what is stored: per table and symbol, first and last time, rows, rows expected, holes and outages.",
        discussion: """
        Reads the database only (nothing is fetched or written). For kline tables, rows expected are the candles \
        between the first and last stored one, holes are found by the same window query as `gaps`, outages are holes \
        Binance itself has no candles for (kline_gaps_confirmed), and behind counts the closed candles after the last \
        stored one. For aggregate trades, ids follow each other: a jump in ids is a hole. funding_rates shows its span \
        and rows (Binance's funding intervals differ by symbol). Without --timeframes, funding and trades tables are \
        listed too. Where the ledger's row_sources has counted them, files and REST show how many rows came from \
        archive files and how many from REST. Exit status 0 whatever the coverage; `complete` in the JSON says whether \
        a series lacks rows.
        """)

    @Option(help: "Only this market's tables (futures, coinm or spot). Default: all.")
    var market: String?

    @Option(help: ArgumentHelp("Only these intervals' kline tables (comma-separated). Default: every kline table that exists, and the funding and trades tables.", valueName: "list"))
    var timeframes: String?

    @Option(help: ArgumentHelp("Only these symbols (comma-separated). Default: every symbol stored.", valueName: "list"))
    var symbols: String?

    @Option(help: "table, json (one line) or auto (a table on a terminal, JSON otherwise). Default: auto.")
    var format: String?

    @OptionGroup var database: DatabaseOptions
}

extension CoverageCommand {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runCoverage(self, environment: environment, context: context)
    }
}

extension ExtractorCLI {
    static func runCoverage(_ command: CoverageCommand, environment: [String: String], context: RunContext) async -> Int32 {
        let level: Logger.Level, location: DatabaseLocation?, market: Market?, intervals: [KlineInterval]?, symbols: [Symbol]?, asTable: Bool
        var warnings: [String] = []
        do throws(ConfigurationError) {
            level = try ConfigurationReader.logLevel(command.database.logLevel, environment)
            location = try ConfigurationReader.database(command.database, environment, warnings: &warnings)
            market = try command.market.map { text throws(ConfigurationError) in try ConfigurationReader.market(text) }
            intervals = try command.timeframes.map { text throws(ConfigurationError) in try ConfigurationReader.intervals(text, market: market) }
            if let text = command.symbols {
                do { symbols = try Symbol.parseList(text) } catch { throw ConfigurationError(error.description) }
                if symbols?.isEmpty == true { throw ConfigurationError("no symbol in --symbols '\(text)': name at least one, or leave it out for all") }
            } else {
                symbols = nil
            }
            switch command.format?.lowercased() {
            case nil, "auto": asTable = context.outputIsTerminal
            case "table": asTable = true
            case "json": asTable = false
            default: throw ConfigurationError("invalid --format '\(command.format ?? "")': use table, json or auto")
            }
        } catch {
            return fail(error, context: context)
        }
        guard let location else {
            return fail(ConfigurationError("no database configured: set DATABASE_URL or MYSQL_URI (mysql://user:password@host:3306/database) or pass --database-url"),
                        context: context)
        }
        let logger = makeLogger("coverage", level: level, context: context)
        for warning in warnings { logger.warning("\(warning)") }
        let opened = location.open(size: 1, logger: logger)
        defer { opened.shutdown() }
        let store = opened.coverage
        do {
            let existing = try await store.existingTables()
            var report = CoverageReport(series: [], notes: [])
            let klineTables = KlineTable.all.filter { t in
                existing.contains(t.name) && (market == nil || t.market == market) && (intervals?.contains(t.interval) ?? true)
            }
            // A table of rows on a grid: expected rows, holes, confirmed outages and rows behind.
            func gridded(_ table: any GapTable) async throws -> [SeriesCoverage] {
                let confirmed = existing.contains(ConfirmedGapTable.name) ? try await store.gaps.confirmed(table: table) : []
                return try await store.klines(table: table, symbols: symbols, confirmed: confirmed, now: context.clock.now())
            }
            for table in klineTables {
                // A table of another shape (epoch numbers for times, say) is named, not misread.
                if let reason = try await store.unreadable(table) {
                    report.notes.append("\(table.name) not read: \(reason)")
                    continue
                }
                report.series += try await gridded(table)
            }
            if intervals == nil {
                for fundingMarket in [Market.futures, .coinm] where market == nil || market == fundingMarket {
                    let table = FundingTable.name(for: fundingMarket)
                    if existing.contains(table) { report.series += try await store.funding(table: table, symbols: symbols) }
                }
                if market == nil || market == .futures, existing.contains(MetricsTable.name) {
                    // Every 5 minutes, counted as a kline table is.
                    report.series += try await gridded(MetricsTable())
                }
                for tradeMarket in Market.allCases where market == nil || market == tradeMarket {
                    let table = TradeTable(market: tradeMarket)
                    if existing.contains(table.name) { report.series += try await store.trades(table: table, symbols: symbols) }
                }
            }
            // Where the rows came from, as the ledger's `row_sources` adds them up.
            if existing.contains(RowSourcesTable.name) {
                var sums: [String: [RowSource: Int64]] = [:]
                for total in try await opened.audit.sources() { sums[total.table + " " + total.symbol, default: [:]][total.source, default: 0] += total.rows }
                for i in report.series.indices {
                    guard let by = sums[report.series[i].table + " " + report.series[i].symbol] else { continue }
                    report.series[i].fromFiles = by[.archive] ?? 0
                    report.series[i].fromRESTForFileHoles = by[.archiveHole] ?? 0
                    report.series[i].fromREST = (by[.rest] ?? 0) + (by[.archiveHole] ?? 0)
                }
            }
            context.output.write(asTable ? report.table() : report.jsonLine())
            return ExitStatus.success
        } catch {
            return storageFailure(error, context: context)
        }
    }
}
