import BinanceAPI
import Logging

/// One database the commands read and write, whichever system holds it. The commands and the pipeline call only
/// this and the protocols it vends (`KlineStoring`, `FundingStoring`, `TradeStoring`, `GapStoring`); each system is a
/// store of its own (`MariaDBStore`; `PostgresDataStore` in Stores/PostgreSQL), so a third is a new store, not a
/// change to the pipeline.
public protocol DataStore: Sendable {
    /// The database as messages show it (no password).
    var described: String { get }
    /// Readies the tables a run writes: creates those missing (not in a dry run), checks that the run may write them,
    /// and checks that those already there can take its rows, before anything is fetched. Says what it found in the
    /// log. Throws `SchemaError` or the store's `StoreFailure` for what only a change of configuration fixes.
    func prepare(klineTables: [KlineTable], otherTables: [TableDefinition], dryRun: Bool, logger: Logger) async throws -> PreparedTables
    /// What `coverage` reads.
    var coverage: any CoverageReading { get }
    /// What `audit` reads: stored rows by key, the archive ledger, the row sources.
    var audit: any AuditReading { get }
    /// `binance-extractor migrate`: creates the tables that are missing, and brings existing ones to the shape the runs
    /// write where that is safe (refusing, with the fix, where it is not); returns what it did.
    func migrate(klineTables: [KlineTable], otherTables: [TableDefinition]) async throws -> MigrationReport
    /// Closes the connections.
    func shutdown()
}

/// What a prepared store gives a run: the tables that exist and the stores that write them (nil where the store does
/// not hold that data yet: the commands refuse such a run before preparing it).
public struct PreparedTables: Sendable {
    public var existing: Set<String>
    public var klines: any KlineStoring
    public var funding: (any FundingStoring)?
    public var trades: (any TradeStoring)?
    public var gaps: (any GapStoring)?
    public var metrics: (any MetricsStoring)?
    /// Any catalogue table's rows (a dataset with no writer of its own).
    public var catalogue: (any CatalogueWriting)?

    public init(existing: Set<String>, klines: any KlineStoring, funding: (any FundingStoring)?, trades: (any TradeStoring)?,
                gaps: (any GapStoring)?, metrics: (any MetricsStoring)? = nil, catalogue: (any CatalogueWriting)? = nil) {
        self.metrics = metrics
        self.catalogue = catalogue
        self.existing = existing
        self.klines = klines
        self.funding = funding
        self.trades = trades
        self.gaps = gaps
    }
}

/// A table whose rows follow each other on a fixed grid per symbol (candles; 5-minute metrics): what `gaps` and
/// `coverage` find holes in. Its name and time column come from the project's own lists, never from input.
public protocol GapTable: Sendable {
    var name: String { get }
    var timeColumn: String { get }
    /// The grid: one row per interval.
    var interval: KlineInterval { get }
}

extension KlineTable: GapTable {
    public var timeColumn: String { "open_time" }
}

/// Holes in stored klines (or metrics), and the holes Binance itself has no data for (`kline_gaps_confirmed`).
public protocol GapStoring: Sendable {
    /// Holes between stored rows, and (with `since`) before the first stored row after `since`.
    func holes(table: any GapTable, symbols: [Symbol]?, since: Int64?) async throws -> [KlineHole]
    /// Holes already confirmed empty on Binance's side.
    func confirmed(table: any GapTable) async throws -> Set<KlineHole>
    func recordConfirmed(table: any GapTable, holes: [KlineHole]) async throws
    /// Forgets confirmations (for `--recheck`).
    func forget(table: any GapTable, symbols: [Symbol]?) async throws
}


/// What `migrate` did: tables created, upgraded in place (with the changes made), left as they were.
public struct MigrationReport: Sendable, Equatable {
    public init() {}
    public var created: [String] = []
    public var upgraded: [String] = []
    public var unchanged: [String] = []
    /// What was changed in each upgraded table, as the ALTER clauses run.
    public var changes: [String: [String]] = [:]
}
