import BinanceAPI
import Foundation
import Logging
import Storage
import Telemetry

/// `binance-extractor coverage`: what the database holds, per table and symbol, as a table or one JSON line.
struct CoverageReport {
    var series: [SeriesCoverage]
    /// Tables that exist but could not be read as the project's (their shape), with the reason.
    var notes: [String]

    var complete: Int { series.filter { $0.complete == true }.count }
    var incomplete: Int { series.filter { $0.complete == false }.count }

    func jsonLine() -> String {
        let q = LogLineHandler.quote
        func number<T>(_ value: T?) -> String { value.map { "\($0)" } ?? "null" }
        let rows = series.map { s in
            "{\"table\":\(q(s.table)),\"symbol\":\(q(s.symbol)),\"first\":\(q(UTCCalendar.iso8601(s.first))),"
                + "\"last\":\(q(UTCCalendar.iso8601(s.last))),\"rows\":\(s.rows),\"expected\":\(number(s.expected)),"
                + "\"missing\":\(number(s.missing)),\"holes\":\(number(s.holes)),\"confirmed_outages\":\(s.confirmedOutages),"
                + "\"confirmed_missing\":\(s.confirmedMissing),\"behind\":\(number(s.behind)),\"complete\":\(number(s.complete))}"
        }
        let tables = Set(series.map(\.table)).count
        return "{\"coverage\":{\"tables\":\(tables),\"series\":\(series.count),\"complete\":\(complete),\"incomplete\":\(incomplete),"
            + "\"notes\":[\(notes.map(q).joined(separator: ","))]},\"series\":[\(rows.joined(separator: ","))]}\n"
    }

    func table() -> String {
        guard !series.isEmpty || !notes.isEmpty else { return "nothing stored in the tables asked for\n" }
        let header = ["table", "symbol", "first (UTC)", "last (UTC)", "rows", "expected", "missing", "holes", "outages", "behind"]
        var lines = [header]
        for s in series {
            lines.append([s.table, s.symbol, UTCCalendar.iso8601(s.first), UTCCalendar.iso8601(s.last), "\(s.rows)",
                          s.expected.map(String.init) ?? "-", s.missing.map(String.init) ?? "-", s.holes.map(String.init) ?? "-",
                          s.confirmedOutages == 0 ? "0" : "\(s.confirmedOutages) (\(s.confirmedMissing))", s.behind.map(String.init) ?? "-"])
        }
        let widths = header.indices.map { c in lines.map { $0[c].count }.max() ?? 0 }
        var out = lines.map { row in
            String(row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .reversed().drop { $0 == " " }.reversed())
        }
        out.insert(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "), at: 1)
        var text = out.joined(separator: "\n") + "\n"
        let missing = series.compactMap { s in s.missing.map { $0 - s.confirmedMissing } }.filter { $0 > 0 }.reduce(0, +)
        let unknown = series.count - complete - incomplete
        text += "\(series.count) series in \(Set(series.map(\.table)).count) tables: \(complete) complete, \(incomplete) lacking rows"
            + (unknown > 0 ? ", \(unknown) without a fixed cadence (funding)" : "") + "\n"
        if missing > 0 {
            text += "\(missing) rows Binance has are missing: `binance-extractor gaps` fills kline holes, `trades --start ... --end ...` a range of trades\n"
        }
        for note in notes { text += "note: \(note)\n" }
        return text
    }
}

extension ExtractorCLI {
    static func runCoverage(_ command: CoverageCommand, environment: [String: String], context: RunContext) async -> Int32 {
        let level: Logger.Level, location: DatabaseLocation?, market: Market?, intervals: [KlineInterval]?, symbols: [Symbol]?, asTable: Bool
        var warnings: [String] = []
        do throws(ConfigurationError) {
            level = try Resolve.logLevel(command.database.logLevel, environment)
            location = try Resolve.database(command.database, environment, warnings: &warnings)
            market = try command.market.map { text throws(ConfigurationError) in try Resolve.market(text) }
            intervals = try command.timeframes.map { text throws(ConfigurationError) in try Resolve.intervals(text, market: market) }
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
            context.output.write(asTable ? report.table() : report.jsonLine())
            return ExitStatus.success
        } catch {
            return storageFailure(error, context: context)
        }
    }
}
