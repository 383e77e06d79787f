import BinanceAPI
import BinanceArchive
import Clocks
import Foundation
import Pipeline
import StoreKit
import Testing

/// The unit runner's archive walk (`ArchiveWalk`) for trades and metrics, against a fake archive and fake page
/// sources: no network, no simulator, no database.
@Suite("the archive walk against a fake archive", .timeLimit(.minutes(1)))
struct ArchiveWalkTests {
    static let start: Int64 = 1_704_067_200_000  // 2024-01-01T00:00:00Z
    static let day: Int64 = 86_400_000
    let symbol = try! Symbol(validating: "BTCUSDT")

    func tradeFile(_ day: Int) -> ArchiveFile {
        ArchiveFile(market: .futures, dataset: .aggTrades, symbol: symbol, period: .day(year: 2024, month: 1, day: day))
    }

    @Test("trades: files by day, a jump in a file's ids paged from REST before the later row, a missing day's ids after; each id once, in order")
    func tradesFromFiles() async throws {
        let now = Self.start + 3 * Self.day + 6 * 3_600_000  // 2024-01-04T06:00
        let source = FakeTrades(firstTime: Self.start, every: 60_000, now: now)
        let jan2 = tradeFile(2), jan3 = tradeFile(3)
        let hole: ClosedRange<Int64> = 1_600...1_699  // ids the 2 January file lacks
        let archive = FakeArchive { file in
            switch file {
            case jan2: .rows(source.trades(in: file.range).filter { !hole.contains($0.id) })
            case jan3: .absent
            default: .absent
            }
        }
        let store = MemoryTrades()
        let outcome = try await TradeExtractor(market: .futures, symbol: symbol, client: source, store: store, clock: ManualClock(now: now),
                                               startTime: Self.start + 12 * 3_600_000, batchSize: 500, maxPages: 100, dryRun: false,
                                               sourceMode: .auto, archive: archive).run()
        let first = source.count(through: Self.start + 12 * 3_600_000 - 1) + 1
        #expect(store.ids() == Array(first...source.count(through: now)))
        #expect(store.writes.values.allSatisfy { $0 == 1 }, "no trade written twice")
        #expect(store.writeOrder == store.writeOrder.sorted(), "writes in id order")
        // The 2 January file gave its rows but the hole; the hole came by id, before the file's next row.
        #expect(outcome.fromArchive == 1_440 - hole.count)
        #expect(source.requests.contains { $0.fromId == hole.lowerBound })
        #expect(outcome.unreadFiles.contains { $0.contains(jan3.fileName) && $0.contains("not published") })
        #expect(archive.asked == [jan2, jan3], "January is not closed yet: its days, from the first whole one")
    }

    @Test("trades with --source archive: a jump in ids is counted as lacked, nothing is asked of REST, and the unit fails naming it")
    func tradesArchiveOnly() async throws {
        let now = Self.start + 3 * Self.day + 6 * 3_600_000
        let source = FakeTrades(firstTime: Self.start, every: 60_000, now: now)
        let archive = FakeArchive { file in
            .rows(source.trades(in: file.range).filter { !(1_600...1_699).contains($0.id) })
        }
        let store = MemoryTrades()
        let failure = try #require(await #expect(throws: UnitFailure.self) {
            _ = try await TradeExtractor(market: .futures, symbol: self.symbol, client: source, store: store, clock: ManualClock(now: now),
                                         startTime: Self.start + Self.day, backfill: (Self.start + Self.day)...(Self.start + 3 * Self.day - 1),
                                         batchSize: 500, maxPages: 100, dryRun: false, sourceMode: .archive, archive: archive).run()
        })
        #expect(source.requests.isEmpty, "nothing from REST")
        #expect(failure.partial.archiveLacked == 100)
        #expect(store.ids().count == 2 * 1_440 - 100)
        #expect("\(failure.underlying)".contains("--source archive"))
    }

    @Test("metrics with --source archive: a file's missing rows and a missing day are lacked, never fetched; the rest stored")
    func metricsArchiveOnly() async throws {
        let now = Self.start + 40 * Self.day
        let step = FuturesMetrics.periodMilliseconds
        let day1 = ArchiveFile(market: .futures, dataset: .metrics, symbol: symbol, period: .day(year: 2024, month: 1, day: 2))
        let archive = FakeArchive { file in
            guard file == day1 else { return .absent }
            return .rows(stride(from: file.range.lowerBound, to: file.range.upperBound, by: Int(step))
                .filter { $0 != file.range.lowerBound + 10 * step && $0 != file.range.lowerBound + 11 * step }
                .map { FuturesMetric(time: $0, sumOpenInterest: DecimalString(unchecked: "1.5")) })
        }
        let source = FakeMetrics()
        let store = MemoryMetrics()
        let unit = ExtractionUnit(market: .futures, symbol: symbol, dataset: .metrics)
        let failure = try #require(await #expect(throws: UnitFailure.self) {
            _ = try await MetricsExtractor(unit: unit, client: source, store: store, clock: ManualClock(now: now), lookbackMilliseconds: 0,
                                           explicitRange: (Self.start + Self.day)...(Self.start + 3 * Self.day - 1), batchSize: 100,
                                           sourceMode: .archive, archive: archive, dryRun: false, logger: .init(label: "test")).run()
        })
        #expect(source.requests.isEmpty, "nothing from REST")
        #expect(failure.partial.archiveLacked == 2 + 288)
        #expect(store.rows().count == 288 - 2)
        #expect(failure.partial.unreadFiles.contains { $0.contains("BTCUSDT-metrics-2024-01-03.zip") })
    }

    @Test("a dry run lists the files with their sizes and reads none")
    func dryRunLists() async throws {
        let now = Self.start + 3 * Self.day + 6 * 3_600_000
        let source = FakeTrades(firstTime: Self.start, every: 60_000, now: now)
        let archive = FakeArchive { file in .rows(source.trades(in: file.range)) }
        let outcome = try await TradeExtractor(market: .futures, symbol: symbol, client: source, store: MemoryTrades(), clock: ManualClock(now: now),
                                               startTime: Self.start, batchSize: 500, maxPages: 100, dryRun: true, sourceMode: .auto,
                                               archive: archive).run()
        #expect(archive.asked.isEmpty, "no file read")
        #expect(outcome.plannedFiles.map(\.name) == ["BTCUSDT-aggTrades-2024-01-01.zip", "BTCUSDT-aggTrades-2024-01-02.zip",
                                                     "BTCUSDT-aggTrades-2024-01-03.zip"])
        #expect(outcome.plannedFiles.allSatisfy { $0.bytes == 1_000 })
    }
}

/// Files as the test says: rows (accepted by the file's format, delivered in batches), or no file.
final class FakeArchive: ArchiveSource, @unchecked Sendable {
    enum Answer { case rows([any Sendable]), absent, refused(String) }
    let answer: @Sendable (ArchiveFile) -> Answer
    private let lock = NSLock()
    private var log: [ArchiveFile] = []
    var asked: [ArchiveFile] { lock.withLock { log } }

    init(_ answer: @escaping @Sendable (ArchiveFile) -> Answer) { self.answer = answer }

    func read<Row>(_ file: ArchiveFile, format: ArchiveRowFormat<Row>, deliver: ([Row]) async throws -> Void) async throws -> ArchiveRead {
        lock.withLock { log.append(file) }
        switch answer(file) {
        case .absent: return .absent
        case .refused(let why): return .refused(why)
        case .rows(let any):
            let rows = try any.compactMap { $0 as? Row }.filter { try format.accept($0) }
            for start in stride(from: 0, to: rows.count, by: 300) { try await deliver(Array(rows[start..<min(start + 300, rows.count)])) }
            return .rows(rows.count, ArchiveFacts(size: 1_000, etag: "\"e\"", sha256: String(repeating: "0", count: 64)))
        }
    }

    func size(of file: ArchiveFile) async -> ArchiveSize { .bytes(1_000) }
}

extension FakeTrades {
    /// The trades whose times fall in `range`.
    func trades(in range: Range<Int64>) -> [AggTrade] {
        let first = count(through: range.lowerBound - 1) + 1, last = count(through: range.upperBound - 1)
        guard first <= last else { return [] }
        return (first...last).map { id in
            AggTrade(id: id, price: DecimalString(unchecked: "42000.5"), quantity: DecimalString(unchecked: "0.01"), firstTradeId: id * 3,
                     lastTradeId: id * 3 + 2, time: time(of: id), isBuyerMaker: id % 2 == 0)
        }
    }
}
