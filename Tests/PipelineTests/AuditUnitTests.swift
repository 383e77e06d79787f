import BinanceAPI
import BinanceArchive
import Foundation
import Pipeline
import StoreKit
import Testing

/// The audit's and the ledger's pure parts, without a network or a database: canonical values, files named back from
/// the ledger, validators compared, rows tagged with their source, and the comparer against an in-memory table.
@Suite("audit and ledger, in memory")
struct AuditUnitTests {
    @Test("decimals compare as numbers written exactly: insignificant zeros and signs do not differ, digits do")
    func canonicalDecimals() {
        let same = [("1.50000000", "1.5"), ("0001.5", "1.5"), ("-0.000", "0"), ("+2.", "2"), ("0.00000001", "0.00000001"), (".5", "0.5")]
        for (a, b) in same { #expect(Canonical.decimal(a) == Canonical.decimal(b), "\(a) vs \(b)") }
        #expect(Canonical.decimal("1.5") != Canonical.decimal("1.51"))
        #expect(Canonical.decimal("-1.5") == "-1.5")
        #expect(Canonical.value("1", kind: .boolean) == "true" && Canonical.value("t", kind: .boolean) == "true" && Canonical.value("0", kind: .boolean) == "false")
        #expect(Canonical.value(nil, kind: .decimal) == nil)
    }

    @Test("a ledger row names its file again, for every dataset; a part the archives do not have is refused")
    func filesFromTheLedger() throws {
        let btc = try Symbol(validating: "BTCUSDT")
        let files = [
            ArchiveFile(market: .futures, dataset: .klines(.h1), symbol: btc, period: .month(year: 2024, month: 1)),
            ArchiveFile(market: .futures, dataset: .klines(.mo1), symbol: btc, period: .month(year: 2024, month: 2)),
            ArchiveFile(market: .futures, dataset: .priceKlines(.premium, .m1), symbol: btc, period: .day(year: 2024, month: 2, day: 29)),
            ArchiveFile(market: .spot, dataset: .aggTrades, symbol: btc, period: .day(year: 2025, month: 1, day: 1)),
            ArchiveFile(market: .futures, dataset: .metrics, symbol: btc, period: .day(year: 2024, month: 3, day: 1)),
        ]
        for file in files {
            let again = ArchiveFile(market: file.market, datasetFolder: file.datasetFolder, symbol: file.symbol.name, series: file.seriesText,
                                    period: file.periodText)
            #expect(again == file && again?.path == file.path, "\(file.path)")
        }
        for (folder, series, period) in [("klines", "1h", "2024-02-30"), ("klines", "1h", "2024-13"), ("klines", "7h", "2024-01"),
                                         ("nonsense", "", "2024-01-01"), ("klines", "", "2024-01"), ("aggTrades", "", "24-01-01")] {
            #expect(ArchiveFile(market: .futures, datasetFolder: folder, symbol: "BTCUSDT", series: series, period: period) == nil, "\(folder) \(series) \(period)")
        }
        #expect(ArchiveFile(market: .futures, datasetFolder: "klines", symbol: "BTC USDT", series: "1h", period: "2024-01") == nil)
    }

    @Test("a file served again differs when its ETag, Last-Modified or size does; what either side lacks is not compared")
    func validators() {
        let recorded = ArchiveFacts(size: 100, etag: "\"a\"", lastModified: "Mon, 01 Jan 2024 00:00:00 GMT")
        #expect(!ArchiveFacts(size: 100, etag: "\"a\"", lastModified: "Mon, 01 Jan 2024 00:00:00 GMT").differs(from: recorded))
        #expect(ArchiveFacts(size: 100, etag: "\"b\"", lastModified: "Mon, 01 Jan 2024 00:00:00 GMT").differs(from: recorded))
        #expect(ArchiveFacts(size: 100, etag: "\"a\"", lastModified: "Tue, 02 Jan 2024 00:00:00 GMT").differs(from: recorded))
        #expect(ArchiveFacts(size: 101, etag: "\"a\"", lastModified: "Mon, 01 Jan 2024 00:00:00 GMT").differs(from: recorded))
        #expect(!ArchiveFacts(size: nil, etag: nil, lastModified: nil).differs(from: recorded))
        #expect(!ArchiveFacts(size: 5, etag: "\"z\"").differs(from: ArchiveFacts()))
    }

    @Test("the writer tells which source each accepted batch's rows came from, in order, across batch boundaries")
    func sourcesAcrossBatches() async throws {
        let seen = Seen()
        let writer = BatchWriter<Int>(batchSize: 4, accepted: { batch, runs in seen.add(batch, runs.map { ($0.source, $0.count) }) }) { $0.count }
        await writer.setSource(.archive)
        try await writer.append([1, 2, 3])
        await writer.setSource(.archiveHole)
        try await writer.append([4, 5])
        await writer.setSource(.rest)
        try await writer.append([6])
        try await writer.finish()
        let batches = seen.all
        #expect(batches.map(\.0) == [[1, 2, 3, 4], [5, 6]])
        #expect(batches[0].1.map(\.0) == [.archive, .archiveHole] && batches[0].1.map(\.1) == [3, 1])
        #expect(batches[1].1.map(\.0) == [.archiveHole, .rest] && batches[1].1.map(\.1) == [1, 1])
    }

    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var batches: [([Int], [(RowSource, Int)])] = []
        func add(_ batch: [Int], _ runs: [(RowSource, Int)]) { lock.withLock { batches.append((batch, runs)) } }
        var all: [([Int], [(RowSource, Int)])] { lock.withLock { batches } }
    }

    /// A table of (key, value) rows, read as `AuditReading` reads a store.
    final class MemoryTable: AuditReading, @unchecked Sendable {
        private let lock = NSLock()
        var rows: [Int64: String]
        init(_ rows: [Int64: String]) { self.rows = rows }
        func rows(_ table: TableDefinition, symbol: String, key: String, after: Int64?, through: Int64, limit: Int) async throws -> [[String?]] {
            lock.withLock {
                Array(rows.filter { $0.key > (after ?? .min) && $0.key <= through }.sorted { $0.key < $1.key }.prefix(limit).map { [String($0.key), $0.value] })
            }
        }
        func ledgerFiles() async throws -> [[String?]] { [] }
        func sourceTotals() async throws -> [[String?]] { [] }
        func write(_ batch: [(Int64, String)]) -> Int { lock.withLock { for (k, v) in batch { rows[k] = v }; return batch.count } }
    }

    struct Row: Sendable, Equatable {
        let key: Int64
        let value: String
    }

    static let table = AuditedTable<Row>(
        definition: TableDefinition(name: "t", columns: [.symbol, TableDefinition.Column("k", .integer), .decimal("v")], key: ["symbol", "k"], comment: ""),
        keyColumn: "k", key: \.key) { [String($0.key), Canonical.decimal($0.value)] }

    @Test("the comparer lists a differing value, a row only the reference has and one only the copy has; --fix writes the first two")
    func comparer() async throws {
        let stored = MemoryTable([1: "1.0", 2: "2.50", 3: "3", 5: "5", 9: "9"])
        let findings = AuditFindings()
        let comparer = RowComparer(table: Self.table, reader: stored, symbol: "BTCUSDT", after: 0, fix: true, keepStored: false, findings: findings) { batch in
            stored.write(batch.map { ($0.key, $0.value) })
        }
        // Reference: 1 equal (other zeros), 2 differs, 3 equal, 4 missing in the copy; 5 is stored but absent from the reference.
        try await comparer.compare([Row(key: 1, value: "1"), Row(key: 2, value: "2.6"), Row(key: 3, value: "3.000")])
        try await comparer.compare([Row(key: 4, value: "4"), Row(key: 6, value: "6")])
        try await comparer.finish(through: 8)
        let listed = await findings.totals.differences
        #expect(listed.map(\.key) == [2, 4, 5, 6], "\(listed)")
        let changed = try #require(listed.first { $0.key == 2 }), extra = try #require(listed.first { $0.key == 5 })
        #expect(changed.column == "v" && changed.stored == "2.5" && changed.reference == "2.6")
        #expect(extra.stored == "present" && extra.reference == nil && extra.resolution == .open)
        #expect(listed.filter { $0.resolution == .fixed }.map(\.key) == [2, 4, 6])
        #expect(stored.rows[2] == "2.6" && stored.rows[4] == "4" && stored.rows[9] == "9", "key 9 lies past the compared range")
        let totals = await findings.totals
        let (open, compared) = (totals.open, totals.rowsCompared)
        #expect(open == 1 && compared == 5)
    }

    @Test("--prefer archive keeps a differing stored value and writes only what is missing")
    func keepStored() async throws {
        let stored = MemoryTable([1: "1", 2: "2"])
        let findings = AuditFindings()
        let comparer = RowComparer(table: Self.table, reader: stored, symbol: "BTCUSDT", after: 0, fix: true, keepStored: true, findings: findings) { batch in
            stored.write(batch.map { ($0.key, $0.value) })
        }
        try await comparer.compare([Row(key: 1, value: "1.1"), Row(key: 2, value: "2"), Row(key: 3, value: "3")])
        try await comparer.finish(through: 3)
        #expect(stored.rows == [1: "1", 2: "2", 3: "3"])
        let totals = await findings.totals
        let (kept, fixed, open) = (totals.keptRows, totals.fixedRows, totals.open)
        #expect(kept == 1 && fixed == 1 && open == 0)
    }

    @Test("the sample draws the same days for the same seed, each inside the stored span")
    func sampleDays() {
        let span = UTCCalendar.parse("2024-01-01T05:00")!...UTCCalendar.parse("2024-03-01T02:00")!
        let a = AuditSampling.days(span, count: 20, seed: 7), b = AuditSampling.days(span, count: 20, seed: 7)
        #expect(a == b && a.count == 20 && a.allSatisfy { span.contains($0.lowerBound) && span.contains($0.upperBound) })
        #expect(AuditSampling.days(span, count: 20, seed: 8) != a)
        #expect(AuditSampling.days(span, count: 400, seed: 1).count == 61)
    }
}
