import BinanceAPI

/// `archive_files`: every archive file a run read (or a recheck read again), one row per file path: what it is, the
/// HTTP validators it was served with (size, ETag, Last-Modified), the SHA-256 its CHECKSUM gave, the rows it held and
/// the rows the run took from it, when, and by which build. What the copy was built from, and what `audit
/// --recheck-archives` asks the archive host about again.
public enum ArchiveLedgerTable {
    public static let name = "archive_files"
    public static let definition = TableDefinition(name: name, columns: [
        TableDefinition.Column("path", .text, length: 255, comment: "below the archive's base URL"),
        TableDefinition.Column("market", .text, length: 20),
        TableDefinition.Column("dataset", .text, length: 24, comment: "the archive's folder: klines, markPriceKlines, aggTrades, metrics, ..."),
        .symbol,
        TableDefinition.Column("series", .text, length: 20, comment: "the interval of a klines file; empty for other datasets"),
        TableDefinition.Column("period", .text, length: 20, comment: "YYYY-MM (monthly file) or YYYY-MM-DD (daily file)"),
        TableDefinition.Column("table_name", .text, length: 32, comment: "the table its rows went to"),
        TableDefinition.Column("size_bytes", .integer, nullable: true),
        TableDefinition.Column("etag", .text, nullable: true, length: 128),
        TableDefinition.Column("last_modified", .text, nullable: true, length: 40, comment: "the HTTP date, as served"),
        TableDefinition.Column("sha256", .text, length: 64, comment: "from the file's CHECKSUM, which the download matched"),
        TableDefinition.Column("rows_read", .integer, comment: "rows the file held (repeats dropped)"),
        TableDefinition.Column("rows_written", .integer, comment: "rows of it the run wrote (those inside its range)"),
        .time("read_at"),
        TableDefinition.Column("build_version", .text, length: 32),
    ], key: ["path"], indexes: [TableDefinition.Index(name: "table_symbol", columns: ["table_name", "symbol"])],
    comment: "every Binance archive file the copy was built from")
}

/// `row_sources`: per table, symbol and UTC day, how many rows came from each source (`archive`: a file; `rest`: REST,
/// where no file covers the day; `archive_hole`: REST, for what a file lacked or a file missing from the archive).
/// Counts add up over runs.
public enum RowSourcesTable {
    public static let name = "row_sources"
    public static let definition = TableDefinition(name: name, columns: [
        TableDefinition.Column("table_name", .text, length: 32), .symbol, .time("day", comment: "the UTC day's start"),
        TableDefinition.Column("source", .text, length: 20, comment: "archive, rest or archive_hole"),
        TableDefinition.Column("row_count", .integer, accumulates: true, comment: "rows written, added up over runs"),
        TableDefinition.Column("updated_at", .time, defaultsToNow: true),
    ], key: ["table_name", "symbol", "day", "source"], comment: "where each day's rows came from")
}

/// The ledger's two tables, which every run that writes keeps.
public enum LedgerTables {
    public static let all = [ArchiveLedgerTable.definition, RowSourcesTable.definition]
}

/// Where a row came from, as `row_sources` counts it.
public enum RowSource: String, Sendable, Hashable, CaseIterable {
    case archive
    case rest
    /// From REST for what an archive file lacked (a hole in the file, or a file missing or refused).
    case archiveHole = "archive_hole"
}

/// One archive file as `archive_files` records it.
public struct ArchiveFileRecord: Sendable, Equatable {
    public var path: String
    public var market: Market
    public var dataset: String
    public var symbol: String
    public var series: String
    public var period: String
    public var table: String
    public var size: Int?
    public var etag: String?
    public var lastModified: String?
    public var sha256: String
    public var rowsRead: Int
    public var rowsWritten: Int
    public var readAt: Int64
    /// The time of the last row the run took from the file (nil: none): a failed run records only files whose rows
    /// were all written.
    public var lastRowTime: Int64?

    public init(path: String, market: Market, dataset: String, symbol: String, series: String, period: String, table: String, size: Int?,
                etag: String?, lastModified: String?, sha256: String, rowsRead: Int, rowsWritten: Int, readAt: Int64, lastRowTime: Int64? = nil) {
        self.path = path
        self.market = market
        self.dataset = dataset
        self.symbol = symbol
        self.series = series
        self.period = period
        self.table = table
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
        self.sha256 = sha256
        self.rowsRead = rowsRead
        self.rowsWritten = rowsWritten
        self.readAt = readAt
        self.lastRowTime = lastRowTime
    }

    /// The row in `ArchiveLedgerTable.definition`'s written order.
    public func values(build: String) -> [ColumnValue] {
        [.text(path), .text(market.rawValue), .text(dataset), .text(symbol), .text(series), .text(period), .text(table),
         size.map { .integer(Int64($0)) } ?? .null, etag.map { .text(String($0.prefix(128))) } ?? .null,
         lastModified.map { .text(String($0.prefix(40))) } ?? .null, .text(sha256), .integer(Int64(rowsRead)), .integer(Int64(rowsWritten)),
         .time(readAt), .text(String(build.prefix(32)))]
    }

    /// A record read back from `archive_files` (the columns in the definition's order, times as Unix ms).
    public init?(stored row: [String?]) {
        guard row.count >= 14, let path = row[0], let marketText = row[1], let market = Market(rawValue: marketText), let dataset = row[2],
              let symbol = row[3], let table = row[6], let sha = row[10] else { return nil }
        self.init(path: path, market: market, dataset: dataset, symbol: symbol, series: row[4] ?? "", period: row[5] ?? "", table: table,
                  size: row[7].flatMap { Int($0) }, etag: row[8], lastModified: row[9], sha256: sha, rowsRead: row[11].flatMap { Int($0) } ?? 0,
                  rowsWritten: row[12].flatMap { Int($0) } ?? 0, readAt: row[13].flatMap { Int64($0) } ?? 0)
    }
}

/// Rows of one source on one UTC day of a table and symbol.
public struct SourceDay: Sendable, Hashable {
    public var day: Int64
    public var source: RowSource
    public var rows: Int
    public init(day: Int64, source: RowSource, rows: Int) {
        self.day = day
        self.source = source
        self.rows = rows
    }
}

/// Records what a run read: the archive ledger and the day-by-day sources. Written through the catalogue writer, so
/// every store keeps it without code of its own.
public struct Ledger: Sendable {
    public let writer: any CatalogueWriting
    public let build: String

    public init(writer: any CatalogueWriting, build: String) {
        self.writer = writer
        self.build = build
    }

    public func record(files: [ArchiveFileRecord]) async throws {
        guard !files.isEmpty else { return }
        // One row a path: a file read twice in a run keeps its last reading.
        var latest: [String: ArchiveFileRecord] = [:]
        for file in files { latest[file.path] = file }
        _ = try await writer.write(ArchiveLedgerTable.definition, rows: latest.values.sorted { $0.path < $1.path }.map { $0.values(build: build) })
    }

    public func record(table: String, symbol: String, days: [SourceDay]) async throws {
        let rows = days.filter { $0.rows > 0 }.sorted { ($0.day, $0.source.rawValue) < ($1.day, $1.source.rawValue) }
        guard !rows.isEmpty else { return }
        _ = try await writer.write(RowSourcesTable.definition, rows: rows.map {
            [.text(table), .text(symbol), .time($0.day), .text($0.source.rawValue), .integer(Int64($0.rows))]
        })
    }
}

/// What `audit` reads of a store besides `coverage`'s queries: stored rows as text, the ledger, the sources.
public protocol AuditReading: Sendable {
    /// `table`'s rows of `symbol` whose `key` column lies in `(after, through]` (a time column compared in Unix ms), in
    /// key order, at most `limit`: every column of the definition but `symbol` and those the database fills, times as
    /// Unix ms, booleans as 1 or 0, decimals as the database prints them.
    func rows(_ table: TableDefinition, symbol: String, key: String, after: Int64?, through: Int64, limit: Int) async throws -> [[String?]]
    /// Every row of `archive_files`, in its columns' order, times as Unix ms.
    func ledgerFiles() async throws -> [[String?]]
    /// Per table, symbol and source: the rows `row_sources` counts, and the days.
    func sourceTotals() async throws -> [[String?]]
}

/// Rows of one source in one table and symbol, as `row_sources` adds them up: the rows and the days they fall on.
public struct SourceTotal: Sendable, Equatable {
    public let table: String
    public let symbol: String
    public let source: RowSource
    public let rows: Int64
    public let days: Int
}

extension AuditReading {
    /// `sourceTotals` read into values (a source this build does not know is left out).
    public func sources() async throws -> [SourceTotal] {
        try await sourceTotals().compactMap { row in
            guard row.count >= 5, let table = row[0], let symbol = row[1], let source = row[2].flatMap(RowSource.init(rawValue:)),
                  let rows = row[3].flatMap({ Int64($0) }), let days = row[4].flatMap({ Int($0) }) else { return nil }
            return SourceTotal(table: table, symbol: symbol, source: source, rows: rows, days: days)
        }
    }
}

/// Values as two databases print them, made comparable: decimals without insignificant zeros, booleans as
/// `true`/`false`.
public enum Canonical {
    public static func value(_ text: String?, kind: TableDefinition.Kind) -> String? {
        guard let text else { return nil }
        switch kind {
        case .decimal: return decimal(text)
        case .boolean: return ["1", "t", "true", "TRUE"].contains(text) ? "true" : "false"
        case .text, .time, .integer: return text
        }
    }

    /// `000123.4500` → `123.45`, `-0.000` → `0`, `1.` → `1`.
    public static func decimal(_ text: String) -> String {
        var body = Substring(text)
        var negative = false
        if body.first == "-" { negative = true; body = body.dropFirst() } else if body.first == "+" { body = body.dropFirst() }
        var integer = body, fraction = Substring("")
        if let point = body.firstIndex(of: ".") {
            integer = body[..<point]
            fraction = body[body.index(after: point)...]
        }
        while integer.count > 1, integer.first == "0" { integer = integer.dropFirst() }
        if integer.isEmpty { integer = "0" }
        while fraction.last == "0" { fraction = fraction.dropLast() }
        let magnitude = fraction.isEmpty ? String(integer) : "\(integer).\(fraction)"
        return negative && magnitude != "0" ? "-" + magnitude : magnitude
    }
}
