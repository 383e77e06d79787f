import StoreKit
import BinanceAPI
import Logging

/// MariaDB (or MySQL) as a `DataStore`: a pool of Connector/C connections, `SchemaMigrator` to create and check the
/// tables, and tables that already exist taken as they are where they can hold the rows exactly (petrosa's shapes
/// included, see `KlineTableCheck` and `FundingTableCheck`).
public final class MariaDBStore: DataStore {
    public let pool: ConnectionPool
    /// Written into petrosa-shaped tables' `extractor_version`.
    private let extractorVersion: String

    public init(uri: DatabaseURI, options: ConnectionPool.Options, extractorVersion: String, logger: Logger) {
        pool = ConnectionPool(uri: uri, options: options, logger: logger)
        self.extractorVersion = extractorVersion
    }

    public var described: String { "\(pool.uri)" }

    public func shutdown() { pool.shutdown() }

    public var coverage: any CoverageReading { CoverageStore(pool: pool) }

    public var audit: any AuditReading { AuditReader(pool: pool) }

    /// Creates what is missing and upgrades existing tables in place (`SchemaMigrator`: decimals widened, DATETIME(3),
    /// BIGINT ids, unique keys), listing each change.
    public func migrate(klineTables: [KlineTable], otherTables: [TableDefinition]) async throws -> MigrationReport {
        let migrator = SchemaMigrator(pool: pool)
        var report = try await migrator.migrate(klineTables)
        for (table, changes) in try await migrator.upgrade(otherTables).sorted(by: { $0.key < $1.key }) {
            report.upgraded.append(table)
            report.changes[table] = changes
        }
        report.created += try await migrator.ensure(otherTables)
        return report
    }

    public func prepare(klineTables: [KlineTable], otherTables: [TableDefinition], dryRun: Bool, logger: Logger) async throws -> PreparedTables {
        let migrator = SchemaMigrator(pool: pool)
        let missing = try await migrator.missingTables(klineTables)
        if dryRun {
            if !missing.isEmpty {
                logger.info("dry run: tables missing, treating them as empty", metadata: ["tables": "\(missing.map(\.name))"])
            }
        } else {
            var created = try await migrator.migrate(missing).created
            created += try await migrator.ensure(otherTables)
            if !created.isEmpty { logger.info("created missing tables", metadata: ["tables": "\(created.joined(separator: ","))"]) }
            // The privileges the run needs, checked before anything is fetched.
            try await migrator.checkWritable(klineTables.map(\.name) + otherTables.map(\.name))
        }
        let existing = try await migrator.existingTables()
        // Every existing table the run writes is checked before a row goes in.
        var fundingCheck = FundingTableCheck()
        for definition in otherTables where existing.contains(definition.name) {
            let shape = try await TableShape.read(pool, table: definition.name)
            if definition.name == FundingTable.name {
                fundingCheck = try FundingTableCheck.check(shape)
                if fundingCheck.petrosaVersion != nil {
                    fundingCheck.petrosaVersion = extractorVersion
                    logger.info("a petrosa-binance-data-extractor funding_rates: rows are written in its shape and upserted on its id",
                                metadata: ["table": "\(definition.name)"])
                }
            } else {
                try shape.check(definition)
            }
        }
        var klineChecks: [String: KlineTableCheck] = [:]
        for table in klineTables where existing.contains(table.name) {
            var check = try KlineTableCheck.check(try await TableShape.read(pool, table: table.name), table: table)
            if check.petrosaRows != nil {
                check.petrosaRows?.extractorVersion = extractorVersion
                logger.info("a petrosa-binance-data-extractor table: rows are written in its shape (id, timestamp, interval, extracted_at, extractor_version, source) and upserted on its id",
                            metadata: ["table": "\(table.name)"])
            }
            if check != KlineTableCheck() { klineChecks[table.name] = check }
            if check.closeTimeToTheSecond {
                logger.info("close_time is a DATETIME without fractions here: close times are stored to the second, as petrosa-binance-data-extractor stores them; `binance-extractor migrate` makes it DATETIME(3)",
                            metadata: ["table": "\(table.name)"])
            }
            if !check.narrowDecimals.isEmpty {
                logger.info("decimal columns narrower than DECIMAL(38,18): every value is checked to fit exactly before its batch is written; `binance-extractor migrate` widens them",
                            metadata: ["table": "\(table.name)", "columns": "\(check.narrowDecimals.keys.sorted().joined(separator: ","))"])
            }
        }
        return PreparedTables(existing: existing, klines: KlineStore(pool: pool, checks: klineChecks),
                              funding: FundingStore(pool: pool, check: fundingCheck), trades: TradeStore(pool: pool), gaps: GapStore(pool: pool),
                              metrics: MetricsStore(pool: pool), catalogue: MariaDBCatalogueWriter(pool: pool))
    }
}
