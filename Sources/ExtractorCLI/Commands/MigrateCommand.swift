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

/// `binance-extractor migrate`.
struct MigrateCommand: ExtractorCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create the kline tables and upgrade older ones (idempotent).")

    @Option(help: "Only this market's tables (futures, coinm or spot). Default: all.")
    var market: String?

    @Option(help: ArgumentHelp("Only these intervals' tables (comma-separated). Default: all.", valueName: "list"))
    var timeframes: String?

    @OptionGroup var database: DatabaseOptions
}

extension MigrateCommand {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runMigrate(self, environment: environment, context: context)
    }
}

extension ExtractorCLI {
    static func runMigrate(_ command: MigrateCommand, environment: [String: String], context: RunContext) async -> Int32 {
        let level: Logger.Level, location: DatabaseLocation?, tables: [KlineTable]
        var warnings: [String] = []
        do throws(ConfigurationError) {
            level = try ConfigurationReader.logLevel(command.database.logLevel, environment)
            location = try ConfigurationReader.database(command.database, environment, warnings: &warnings)
            var market: Market?, intervals: [KlineInterval]?
            if let text = command.market { market = try ConfigurationReader.market(text) }
            if let text = command.timeframes { intervals = try ConfigurationReader.intervals(text, market: market) }
            tables = KlineTable.all.filter { t in
                (market == nil || t.market == market) && (intervals == nil || intervals!.contains(t.interval))
            }
        } catch {
            return fail(error, context: context)
        }
        guard let location else {
            return fail(ConfigurationError("no database configured: set DATABASE_URL or MYSQL_URI, or pass --database-url"), context: context)
        }
        let logger = makeLogger("migrate", level: level, context: context)
        for warning in warnings { logger.warning("\(warning)") }
        let store = location.open(size: 1, logger: logger)
        defer { store.shutdown() }
        do {
            // With --timeframes, only those kline tables; without, the funding, trades and confirmed-gaps tables too.
            let report = try await store.migrate(klineTables: tables, otherTables: command.timeframes == nil ? TableCatalogue.otherTables : [])
            logger.info("migration done", metadata: [
                "database": "\(location)", "created": "\(report.created.count)", "upgraded": "\(report.upgraded.count)",
                "unchanged": "\(report.unchanged.count)",
            ])
            var text = "created: \(report.created.joined(separator: " "))\nupgraded: \(report.upgraded.joined(separator: " "))\n"
            for table in report.upgraded { text += "  \(table): \((report.changes[table] ?? []).joined(separator: "; "))\n" }
            context.output.write(text + "unchanged: \(report.unchanged.count) tables\n")
            return ExitStatus.success
        } catch {
            return storageFailure(error, context: context)
        }
    }
}
