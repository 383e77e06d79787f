import BinanceAPI
import BinanceArchive
import BinanceSimulator
import Clocks
import Foundation
import HTTPTransport
import TestSupport
import Testing

/// binance-sim's archive tree (data.binance.vision) read through the project's own HTTP client and archive
/// readers: the same candles and trades as REST, with Binance's quirks and the faults to test with.
@Suite("binance-sim serves the archives", .serialized, .timeLimit(.minutes(2)))
struct ArchiveTreeTests {
    static let now = KlinesEndToEndTests.now  // 2024-03-01T12:05:30Z
    let btc = try! Symbol(validating: "BTCUSDT")

    func fetch(_ http: CurlHTTPClient, _ base: String, _ file: ArchiveFile) async throws -> (zip: HTTPResponse, checksum: HTTPResponse) {
        (try await http.get(base + "/" + file.path), try await http.get(base + "/" + file.checksumPath))
    }

    @Test("a monthly futures file: verified, header row, the very candles REST serves; 1mo in names")
    func futuresMonthly() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let http = CurlHTTPClient(options: .init(workers: 1))
        defer { http.shutdown(); Task { await sim.stop() } }
        let file = ArchiveFile(market: .futures, dataset: .klines(.h1), symbol: btc, period: .month(year: 2024, month: 1))
        let (zip, checksum) = try await fetch(http, sim.baseURL, file)
        #expect(zip.status == 200 && checksum.status == 200)
        let sum = try ArchiveChecksum(parsing: String(decoding: checksum.body, as: UTF8.self), fileName: file.fileName)
        #expect(sum.matches(zip.body))
        let entry = try ZipArchive.firstEntry(of: zip.body)
        #expect(entry.name == "BTCUSDT-1h-2024-01.csv")
        #expect(String(decoding: entry.bytes.prefix(9), as: UTF8.self) == "open_time", "USD-M files since 2022-05 start with a header")
        let rows = try ArchiveCSV.klines(entry.bytes, file: file.fileName)
        let rest = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .h1, from: file.range.lowerBound, through: file.range.upperBound - 1)
        #expect(rows.count == 31 * 24 && rows == rest, "byte for byte what REST serves")
        // Downloaded into a file instead of memory (as the archive client spools): the same bytes.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dl-\(UUID().uuidString).zip").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spooled = try await http.download(HTTPRequest(url: sim.baseURL + "/" + file.path), to: path)
        #expect(spooled.status == 200 && spooled.body.isEmpty)
        #expect(FileManager.default.contents(atPath: path).map(Array.init) == zip.body && sum.matches(fileAt: path))
        let month = ArchiveFile(market: .futures, dataset: .klines(.mo1), symbol: btc, period: .month(year: 2023, month: 12))
        #expect(month.path.contains("/1mo/BTCUSDT-1mo-2023-12.zip"))
        #expect(try await http.get(sim.baseURL + "/" + month.path).status == 200)
    }

    @Test("spot files: no header, microseconds from 2025; the same candles as REST in milliseconds")
    func spotMicroseconds() async throws {
        let clock = ManualClock(now: UTCCalendar.parse("2025-03-01")!)
        let sim = try await SimulatorFixture.start(clock: clock)
        let http = CurlHTTPClient(options: .init(workers: 1))
        defer { http.shutdown(); Task { await sim.stop() } }
        for (day, micro) in [((2024, 12, 31), false), ((2025, 1, 2), true)] {
            let file = ArchiveFile(market: .spot, dataset: .klines(.m15), symbol: btc, period: .day(year: day.0, month: day.1, day: day.2))
            let (zip, _) = try await fetch(http, sim.baseURL, file)
            let entry = try ZipArchive.firstEntry(of: zip.body)
            let firstField = entry.bytes.prefix { $0 != 0x2C }
            #expect(firstField.count == (micro ? 16 : 13), "\(file.fileName): \(String(decoding: firstField, as: UTF8.self))")
            let rows = try ArchiveCSV.klines(entry.bytes, file: file.fileName)
            let rest = await sim.simulator.expectedKlines(symbol: "BTCUSDT", interval: .m15, from: file.range.lowerBound, through: file.range.upperBound - 1)
            #expect(rows == rest && rows.count == 96)
        }
        // Spot aggTrades: 8 columns, no header.
        let trades = ArchiveFile(market: .spot, dataset: .aggTrades, symbol: btc, period: .day(year: 2025, month: 2, day: 1))
        let entry = try ZipArchive.firstEntry(of: try await http.get(sim.baseURL + "/" + trades.path).body)
        let parsed = try ArchiveCSV.aggTrades(entry.bytes, file: trades.fileName)
        let first = try #require(parsed.first)
        let rest = await sim.simulator.expectedAggTrades(symbol: "BTCUSDT", fromId: first.id, throughTime: trades.range.upperBound - 1)
        #expect(!parsed.isEmpty && parsed == Array(rest.prefix(parsed.count)))
    }

    @Test("publication: a day is there the day after, a month a few days into the next; before that 404")
    func publication() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let http = CurlHTTPClient(options: .init(workers: 1))
        defer { http.shutdown(); Task { await sim.stop() } }
        let february = ArchiveFile(market: .futures, dataset: .klines(.m1), symbol: btc, period: .month(year: 2024, month: 2))
        let yesterday = ArchiveFile(market: .futures, dataset: .klines(.m1), symbol: btc, period: .day(year: 2024, month: 2, day: 29))
        let today = ArchiveFile(market: .futures, dataset: .klines(.m1), symbol: btc, period: .day(year: 2024, month: 3, day: 1))
        #expect(try await http.get(sim.baseURL + "/" + february.path).status == 404)
        #expect(try await http.get(sim.baseURL + "/" + yesterday.path).status == 200)
        #expect(try await http.get(sim.baseURL + "/" + today.path).status == 404)
        #expect(try await http.get(sim.baseURL + "/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02-30.zip").status == 404)
        clock.advance(by: 4 * 86_400_000)
        #expect(try await http.get(sim.baseURL + "/" + february.path).status == 200)
    }

    @Test("faults: missing, wrong CHECKSUM, a damaged first download, an incomplete file")
    func faults() async throws {
        let clock = ManualClock(now: Self.now)
        let sim = try await SimulatorFixture.start(clock: clock)
        let http = CurlHTTPClient(options: .init(workers: 1))
        defer { http.shutdown(); Task { await sim.stop() } }
        func day(_ d: Int) -> ArchiveFile { ArchiveFile(market: .futures, dataset: .klines(.m5), symbol: btc, period: .day(year: 2024, month: 2, day: d)) }
        await sim.simulator.setArchiveFaults([
            day(1).fileName: .missing, day(2).fileName: .wrongChecksum, day(3).fileName: .damaged(times: 1), day(4).fileName: .incomplete(rows: 100),
        ])
        #expect(try await http.get(sim.baseURL + "/" + day(1).path).status == 404)
        let (zip2, sum2) = try await fetch(http, sim.baseURL, day(2))
        #expect(!(try ArchiveChecksum(parsing: String(decoding: sum2.body, as: UTF8.self), fileName: day(2).fileName)).matches(zip2.body))
        let (zip3, sum3) = try await fetch(http, sim.baseURL, day(3))
        let checksum3 = try ArchiveChecksum(parsing: String(decoding: sum3.body, as: UTF8.self), fileName: day(3).fileName)
        #expect(!checksum3.matches(zip3.body), "the first download is damaged")
        #expect(checksum3.matches(try await http.get(sim.baseURL + "/" + day(3).path).body), "the second is whole")
        let (zip4, sum4) = try await fetch(http, sim.baseURL, day(4))
        #expect(try ArchiveChecksum(parsing: String(decoding: sum4.body, as: UTF8.self), fileName: day(4).fileName).matches(zip4.body))
        #expect(try ArchiveCSV.klines(try ZipArchive.firstEntry(of: zip4.body).bytes, file: day(4).fileName).count == 100, "of 288")
    }
}
