import Foundation
import BinanceAPI
import BinanceArchive
import Testing

@Suite("Binance archive files: names, CHECKSUM, zip, CSV", .timeLimit(.minutes(1)))
struct ArchiveFormatTests {
    let btc = try! Symbol(validating: "BTCUSDT")

    @Test("paths and names as data.binance.vision writes them; 1M is 1mo; the period's time range")
    func paths() {
        let monthly = ArchiveFile(market: .futures, dataset: .klines(.m1), symbol: btc, period: .month(year: 2024, month: 2))
        #expect(monthly.path == "data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip")
        #expect(monthly.checksumPath == monthly.path + ".CHECKSUM")
        #expect(monthly.range == UTCCalendar.parse("2024-02-01")!..<UTCCalendar.parse("2024-03-01")!)
        let month = ArchiveFile(market: .spot, dataset: .klines(.mo1), symbol: btc, period: .day(year: 2025, month: 1, day: 9))
        #expect(month.path == "data/spot/daily/klines/BTCUSDT/1mo/BTCUSDT-1mo-2025-01-09.zip")
        #expect(month.range.count == 86_400_000)
        let trades = ArchiveFile(market: .futures, dataset: .aggTrades, symbol: btc, period: .day(year: 2024, month: 12, day: 31))
        #expect(trades.path == "data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-12-31.zip")
    }

    @Test("SHA-256 (FIPS 180-2 test vectors) and CHECKSUM files with and without a trailing newline")
    func checksums() throws {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let bytes = Array("file".utf8)
        let text = ArchiveChecksum.text(for: bytes, fileName: "X-1m-2024-01.zip")
        let sum = try ArchiveChecksum(parsing: text, fileName: "X-1m-2024-01.zip")
        #expect(sum.matches(bytes) && !sum.matches(bytes + [0]))
        #expect(try ArchiveChecksum(parsing: String(text.dropLast()), fileName: "X-1m-2024-01.zip") == sum)
        #expect(throws: ArchiveChecksum.Invalid.self) { try ArchiveChecksum(parsing: text, fileName: "Y-1m-2024-01.zip") }
        #expect(throws: ArchiveChecksum.Invalid.self) { try ArchiveChecksum(parsing: "<html>404</html>", fileName: "X-1m-2024-01.zip") }
    }

    @Test("a zip of one entry round-trips; damage, truncation and a wrong CRC are refused")
    func zip() throws {
        let csv = Array(String(repeating: "1704067200000,42000.1,42001,41999,42000.5,12.5,1704067259999,525000.25,100,6,252000,0\n", count: 500).utf8)
        let zip = ZipArchive.make(name: "BTCUSDT-1m-2024-01.csv", bytes: csv)
        #expect(zip.count < csv.count / 10, "DEFLATE compresses repeated rows")
        let entry = try ZipArchive.firstEntry(of: zip)
        #expect(entry.name == "BTCUSDT-1m-2024-01.csv" && entry.bytes == csv)
        #expect((try? ZipArchive.firstEntry(of: Array(zip.prefix(zip.count / 2)))) == nil, "a truncated download is refused")
        // A byte of the compressed data (after the 30-byte local header and the name) flipped: DEFLATE or CRC-32 fails.
        var damaged = zip
        damaged[30 + 22 + 10] ^= 0xFF
        #expect((try? ZipArchive.firstEntry(of: damaged)) == nil, "a damaged entry is refused")
        #expect(throws: ZipArchive.Invalid.self) { try ZipArchive.firstEntry(of: Array("not a zip at all, just text".utf8)) }
    }

    @Test("ZIP64: a zip written with ZIP64 sizes, offsets and end records (as one past 4 GiB is) reads back; a short ZIP64 field is refused")
    func zip64() throws {
        let csv = Array((0..<20_000).map { "\($0),42000.\($0 % 97),0.5,\($0 * 2),\($0 * 2 + 1),1704067200000,true\n" }.joined().utf8)
        var zip: [UInt8] = []
        let writer = try ZipWriter(entryName: "BTCUSDT-aggTrades-2024-01.csv") { zip += $0 }
        writer.alwaysZIP64 = true
        for start in stride(from: 0, to: csv.count, by: 7_777) { try writer.write(Array(csv[start..<min(start + 7_777, csv.count)])) }
        try writer.finish()
        // The central entry says 0xFFFFFFFF for both sizes, and a ZIP64 end record and locator come before the end record.
        let locator = zip.count - 22 - 20
        #expect(Array(zip[locator..<(locator + 4)]) == [0x50, 0x4b, 0x06, 0x07])
        let entry = try ZipArchive.entry(in: zip)
        #expect(entry.size == csv.count && entry.name == "BTCUSDT-aggTrades-2024-01.csv")
        let read = try ZipArchive.firstEntry(of: zip)
        #expect(read.bytes == csv)
        // The ZIP64 extra field cut to 8 bytes (its length says 8, the compressed size is missing): refused, not guessed.
        var short = zip
        let central = try #require((0..<(short.count - 4)).last { Array(short[$0..<($0 + 4)]) == [0x50, 0x4b, 0x01, 0x02] })
        let nameLength = Int(short[central + 28]) | Int(short[central + 29]) << 8
        short[central + 46 + nameLength + 2] = 8
        #expect(throws: ZipArchive.Invalid.self) { try ZipArchive.entry(in: short) }
    }

    @Test("sorted runs: lines put in key order on disk in runs, merged in passes, ties in the order added, marks kept, files removed")
    func sortedRuns() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("runs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var rng = SystemRandomNumberGenerator()
        let keys = (0..<5_000).map { _ in Int64.random(in: 0..<1_500, using: &rng) }
        var expected: [(Int64, Bool, String)] = []
        do {
            // 1 KiB runs, 3 at a time: dozens of runs and several merge passes.
            let runs = SortedRuns(folder: folder, runBytes: 1 << 10, fanIn: 3)
            for (i, key) in keys.enumerated() {
                let line = "\(key),line \(i)"
                let marked = i % 7 == 0
                try Array(line.utf8).withUnsafeBufferPointer { try runs.add(key: key, marked: marked, line: $0) }
                expected.append((key, marked, line))
            }
            #expect(runs.runCount > 9, "\(runs.runCount) runs")
            expected = expected.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element)
            var merged: [(Int64, Bool, String)] = []
            let merger = try runs.merger()
            while try merger.read(upTo: 333, { key, marked, line in merged.append((key, marked, String(decoding: line, as: UTF8.self))) }) {}
            #expect(merged.count == expected.count)
            #expect(Swift.zip(merged, expected).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 })
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty, "run files removed")
        // Few lines: sorted in memory, no file.
        let small = SortedRuns(folder: folder)
        for key: Int64 in [3, 1, 2, 1] { try Array("\(key)".utf8).withUnsafeBufferPointer { try small.add(key: key, marked: false, line: $0) } }
        var order: [String] = []
        let merger = try small.merger()
        while try merger.read(upTo: 10, { _, _, line in order.append(String(decoding: line, as: UTF8.self)) }) {}
        #expect(order == ["1", "1", "2", "3"] && small.runCount == 0)
    }

    @Test("streamed a chunk at a time (any size, lines cut anywhere, CRLF, no final newline), a file reads as it does whole")
    func streamed() throws {
        let header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\r\n"
        let rows = (0..<300).map { i in
            let t = 1_704_067_200_000 + Int64(i) * 60_000
            return "\(t),42000.\(i),42001,41999,42000.5,12.5,\(t + 59_999),525000.25,\(i),6,252000,0"
        }
        let csv = Array((header + rows.joined(separator: "\r\n")).utf8)
        let whole = try ArchiveCSV.klines(csv, file: "w.csv")
        #expect(whole.count == 300 && whole[299].numberOfTrades == 299, "the last line has no newline and still counts")
        let zip = ZipArchive.make(name: "w.csv", bytes: csv)
        for size in [1, 7, 64, 1000, 1 << 18] {
            let entry = try ZipArchive.EntryReader(zip)
            var reader = ArchiveCSV.klineRows(file: "w.csv")
            var streamed: [Kline] = []
            var chunks = 0
            while let chunk = try entry.next(maxBytes: size) {
                #expect(chunk.count <= size)
                chunks += 1
                try reader.feed(chunk) { streamed.append($0) }
            }
            try reader.finish { streamed.append($0) }
            #expect(streamed == whole, "chunks of \(size) bytes")
            #expect(chunks >= csv.count / size, "\(chunks) chunks of \(size) bytes")
        }
        // A download cut short (the central directory kept, the data truncated) fails while streaming, never silently.
        var cut = zip
        let entry = try ZipArchive.entry(of: zip)
        cut.replaceSubrange((entry.data.lowerBound + entry.data.count / 2)..<entry.data.upperBound,
                            with: [UInt8](repeating: 0, count: entry.data.count - entry.data.count / 2))
        #expect(throws: ZipArchive.Invalid.self) {
            let reader = try ZipArchive.EntryReader(cut)
            while try reader.next(maxBytes: 4096) != nil {}
        }
    }

    @Test("a zip on disk (a spooled download) reads as it does in memory, the compressed bytes a piece at a time; and its SHA-256 read from disk")
    func spooledFile() throws {
        // Rows that compress poorly enough to span several 256 KiB reads of compressed input.
        var rng = SystemRandomNumberGenerator()
        let csv = Array((0..<40_000).map { i in "\(i),\(UInt64.random(in: 0...UInt64.max, using: &rng)),\(UInt32.random(in: 0...UInt32.max, using: &rng))\n" }.joined().utf8)
        let zip = ZipArchive.make(name: "f.csv", bytes: csv)
        #expect(zip.count > 2 * (256 << 10), "\(zip.count) bytes: more than two reads of compressed input")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("zip-\(UUID().uuidString).zip").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(zip)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try ZipFile(path: path)
        #expect(file.count == zip.count)
        #expect(try ZipArchive.entry(in: file) == ZipArchive.entry(of: zip))
        let reader = try ZipArchive.EntryReader(source: file)
        var unpacked: [UInt8] = []
        while let chunk = try reader.next(maxBytes: 100_000) { unpacked += chunk }
        #expect(unpacked == csv)
        #expect(SHA256.hex(fileAt: path) == SHA256.hex(zip))
        let checksum = try ArchiveChecksum(parsing: ArchiveChecksum.text(for: zip, fileName: "f.zip"), fileName: "f.zip")
        #expect(checksum.matches(fileAt: path) && !checksum.matches(fileAt: path + ".missing"))
        // Cut short on disk: refused while reading, never silently.
        let cutPath = path + ".cut"
        #expect(FileManager.default.createFile(atPath: cutPath, contents: Data(zip.prefix(zip.count / 2))))
        defer { try? FileManager.default.removeItem(atPath: cutPath) }
        #expect(throws: ZipArchive.Invalid.self) { _ = try ZipArchive.EntryReader(source: try ZipFile(path: cutPath)) }
        #expect(SHA256.hex(fileAt: path + ".missing") == nil)
    }

    @Test("futures klines with a header, spot without; microseconds become REST's milliseconds; rows sorted and de-duplicated")
    func klines() throws {
        let header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
        let row2 = "1704067260000,42000.5,42010,42000,42005.00000000,3.5,1704067319999,147017.5,20,1,42005,0\n"
        let row1 = "1704067200000,42000.1,42001,41999,42000.5,12.5,1704067259999,525000.25,100,6,252000,0\n"
        let futures = try ArchiveCSV.klines(Array((header + row2 + row1 + row2).utf8), file: "f.csv")
        #expect(futures.map(\.openTime) == [1_704_067_200_000, 1_704_067_260_000])
        #expect(futures[1].close.text == "42005.00000000", "decimal strings kept as written")
        #expect(futures[0].closeTime == 1_704_067_259_999)
        let spot = try ArchiveCSV.klines(Array("1735689600000000,94000,94010,93990,94005,1.5,1735689659999999,141007.5,15,0.5,47002.5,0\r\n".utf8), file: "s.csv")
        #expect(spot[0].openTime == 1_735_689_600_000 && spot[0].closeTime == 1_735_689_659_999)
        #expect(spot[0].numberOfTrades == 15)
        // Two different candles at one open time: the file cannot be trusted.
        let conflicting = row1 + row1.replacingOccurrences(of: ",100,", with: ",101,")
        #expect(throws: ArchiveCSV.Invalid.self) { try ArchiveCSV.klines(Array(conflicting.utf8), file: "c.csv") }
        #expect(throws: ArchiveCSV.Invalid.self) { try ArchiveCSV.klines(Array("1704067200000,1,2\n".utf8), file: "short.csv") }
        #expect(throws: ArchiveCSV.Invalid.self) { try ArchiveCSV.klines(Array(row1.replacingOccurrences(of: "12.5", with: "1e3").utf8), file: "e.csv") }
    }

    @Test("a line with no end is refused once it passes 4 KiB, before it is held: fed in 64 KiB chunks, the first chunk past the cap throws")
    func runawayLine() throws {
        let row = "1704067200000,42000.1,42001,41999,42000.5,12.5,1704067259999,525000.25,100,6,252000,0\n"
        var rows = ArchiveCSV.klineRows(file: "r.csv")
        var seen = 0
        try rows.feed(Array(row.utf8)) { _ in seen += 1 }
        #expect(seen == 1)
        let chunk = [UInt8](repeating: 0x37, count: 64 << 10)
        #expect {
            try rows.feed(chunk) { _ in }
        } throws: { error in
            "\(error)" == "r.csv line 2: a line longer than 4096 bytes (no row is): the file is damaged"
        }
        // The same across small chunks: the carried part is never allowed to grow past the cap.
        var small = ArchiveCSV.klineRows(file: "s.csv")
        var failedAt: Int?
        for i in 0..<100 where failedAt == nil {
            do { try small.feed([UInt8](repeating: 0x37, count: 1000)) { _ in } } catch { failedAt = i }
        }
        #expect(failedAt == 4, "refused after \(failedAt.map { ($0 + 1) * 1000 } ?? -1) bytes")
    }

    @Test("two different rows for one key found only once a file is sorted name the key, never 'line 0'")
    func conflictAfterSorting() {
        let row1 = "1704067200000,42000.1,42001,41999,42000.5,12.5,1704067259999,525000.25,100,6,252000,0\n"
        let row2 = "1704067260000,42000.5,42010,42000,42005.00000000,3.5,1704067319999,147017.5,20,1,42005,0\n"
        let conflicting = row1 + row2 + row1.replacingOccurrences(of: ",100,", with: ",101,")
        #expect {
            _ = try ArchiveCSV.klines(Array(conflicting.utf8), file: "c.csv")
        } throws: { error in
            let text = "\(error)"
            return !text.contains("line 0") && text.contains("c.csv: two different rows for the key 1704067200000")
        }
    }

    @Test("aggTrades: futures 7 columns with a header, spot 8 without, microsecond times")
    func aggTrades() throws {
        let futures = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
            + "11,42000.1,0.5,20,22,1704067200123,true\n10,42000,0.25,18,19,1704067200100,false\n"
        let f = try ArchiveCSV.aggTrades(Array(futures.utf8), file: "f.csv")
        #expect(f.map(\.id) == [10, 11] && f[1].isBuyerMaker && !f[0].isBuyerMaker && f[0].time == 1_704_067_200_100)
        let spot = try ArchiveCSV.aggTrades(Array("5,94000.5,0.01,7,7,1735689600123456,False,True\n".utf8), file: "s.csv")
        #expect(spot[0].time == 1_735_689_600_123 && spot[0].firstTradeId == 7)
        #expect(throws: ArchiveCSV.Invalid.self) { try ArchiveCSV.aggTrades(Array("5,1,1,7,7,1,maybe\n".utf8), file: "b.csv") }
    }
}

@Suite("metrics archive files")
struct MetricsArchiveTests {
    static let symbol = try! Symbol(validating: "BTCUSDT")

    @Test("create_time as text in UTC, the header skipped, empty values NULL, any notation read as one text")
    func reads() throws {
        let csv = """
            create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio
            2023-01-21 00:05:00,BTCUSDT,98666.16300000,        2236289208.19726700,0.766568632422291,1.1363333457,0.8332767017782309,9.253075900e-01
            2023-01-21 00:10:00,BTCUSDT,98667.1,2236289209,0.7,,0.8,

            """
        let rows = try ArchiveCSV.all(ArchiveCSV.metricsRows(file: "BTCUSDT-metrics-2023-01-21.zip", symbol: Self.symbol), Array(csv.utf8))
        #expect(rows.count == 2)
        #expect(rows[0].time == UTCCalendar.parse("2023-01-21T00:05:00Z"))
        #expect(rows[0].sumOpenInterest?.text == "98666.163" && rows[0].sumOpenInterestValue?.text == "2236289208.197267")
        #expect(rows[0].topTraderAccountRatio?.text == "0.766568632422291" && rows[0].takerBuySellRatio?.text == "0.92530759")
        #expect(rows[1].topTraderPositionRatio == nil && rows[1].takerBuySellRatio == nil && rows[1].globalAccountRatio?.text == "0.8")
    }

    @Test("a row of another symbol, a time that is not YYYY-MM-DD HH:MM:SS, or a value no column holds exactly makes the file unusable", arguments: [
        "2023-01-21 00:05:00,ETHUSDT,1,1,1,1,1,1", "2023-01-21T00:05:00,BTCUSDT,1,1,1,1,1,1", "1674259500000,BTCUSDT,1,1,1,1,1,1",
        "2023-01-21 00:05:00,BTCUSDT,1,1,1,1,1,-1", "2023-01-21 00:05:00,BTCUSDT,1,1,1,1,1",
    ])
    func refuses(line: String) {
        let csv = "create_time,symbol,sum_open_interest,sum_open_interest_value,a,b,c,d\n" + line + "\n"
        #expect(throws: ArchiveCSV.Invalid.self) {
            try ArchiveCSV.all(ArchiveCSV.metricsRows(file: "f.zip", symbol: Self.symbol), Array(csv.utf8))
        }
    }
}
