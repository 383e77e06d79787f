import BinanceAPI
import BinanceArchive
import Foundation
import HTTPTransport
import MariaDBStore
import PostgresStore
import StoreKit

// Row 11: a monthly aggTrades file at a busy symbol's size. binance-sim writes BTCUSDT's April 2024 in the official
// layout at 870 trades a minute (37.6 million trades, about 1 GB zipped at its compression level), once, into
// .build-bench/archive-cache (kept between runs). `trades --source archive` reads it into each store; the same rows,
// unpacked beforehand into a tab-separated file, are loaded by the store's own bulk path (`LOAD DATA INFILE` on
// MariaDB, `COPY` on PostgreSQL) into an empty table of the same definition, in the same run.

/// HEAD of `url` with a long timeout (binance-sim writes a gigabyte file before its first answer); the status.
func headStatus(_ url: String, timeoutSeconds: Int = 1_800) async -> Int {
    let http = CurlHTTPClient(options: .init(workers: 1))
    defer { http.shutdown() }
    return (try? await http.send(HTTPRequest(method: .head, url: url, timeoutMilliseconds: timeoutSeconds * 1000)))?.status ?? 0
}

/// The rows of the zip at `zip`, as the table's columns tab-separated (COPY's text format, which LOAD DATA also reads
/// by default), written to `path` once; the row count.
func bulkFile(from zip: String, to path: String, symbol: String) throws -> Int {
    let countPath = path + ".rows"
    if let text = try? String(contentsOfFile: countPath, encoding: .utf8), let rows = Int(text), FileManager.default.fileExists(atPath: path) {
        return rows
    }
    let reader = try ZipArchive.EntryReader(source: try ZipFile(path: zip))
    FileManager.default.createFile(atPath: path + ".part", contents: nil)
    guard let out = FileHandle(forWritingAtPath: path + ".part") else { throw BenchError("cannot write \(path).part") }
    var rows = ArchiveCSV.aggTradeRows(file: (zip as NSString).lastPathComponent)
    var buffer: [UInt8] = []
    buffer.reserveCapacity(4 << 20)
    var count = 0
    var trades: [AggTrade] = []
    // The store's own formatting (DATETIME-style UTC times, 1/0 flags), which COPY reads too in a UTC session.
    func flush() throws {
        buffer += TradeText.lines(symbol: try Symbol(validating: symbol), trades: trades, time: .datetime, yes: 0x31, no: 0x30)
        count += trades.count
        trades.removeAll(keepingCapacity: true)
        if buffer.count >= 4 << 20 {
            try out.write(contentsOf: buffer)
            buffer.removeAll(keepingCapacity: true)
        }
    }
    while let chunk = try reader.next(maxBytes: 1 << 20) {
        try rows.feed(chunk) { trades.append($0) }
        try flush()
    }
    try rows.finish { trades.append($0) }
    try flush()
    try out.write(contentsOf: buffer)
    try out.close()
    try FileManager.default.moveItem(atPath: path + ".part", toPath: path)
    try "\(count)".write(toFile: countPath, atomically: true, encoding: .utf8)
    return count
}

@MainActor func tradesFileRow() async throws {
    let cache = FileManager.default.currentDirectoryPath + "/.build-bench/archive-cache"
    try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
    // Quick: one day of the same symbol (a thirtieth of the month).
    let (start, end, name) = quick ? ("2024-04-01", "2024-04-02", "daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-04-01.zip")
        : ("2024-04-01", "2024-05-01", "monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-04.zip")
    let sim = try Simulator(["--trades-per-minute", "BTCUSDT=870", "--archive-cache", cache])
    defer { sim.stop() }
    let fileURL = sim.url + "/data/futures/um/" + name
    let built = Date()
    guard await headStatus(fileURL) == 200 else { throw BenchError("binance-sim did not make \(fileURL)") }
    let buildSeconds = Date().timeIntervalSince(built)
    // The zip binance-sim made, and the same rows for the bulk loads.
    let stem = ("data/futures/um/" + name).replacingOccurrences(of: "/", with: "_")
    guard let zipName = try FileManager.default.contentsOfDirectory(atPath: cache).first(where: { $0.hasPrefix(stem + "-") && !$0.hasSuffix(".sha256") })
    else { throw BenchError("no \(stem) in \(cache)") }
    let zipPath = cache + "/" + zipName
    let zipBytes = (try FileManager.default.attributesOfItem(atPath: zipPath)[.size] as? Int) ?? 0
    let tsv = cache + "/bulk-" + zipName + ".tsv"
    let rowCount = try bulkFile(from: zipPath, to: tsv, symbol: "BTCUSDT")
    let unpacked = try ZipArchive.entry(in: ZipFile(path: zipPath)).size
    record("trades_file_bytes", "11. aggTrades file: BTCUSDT \(quick ? "one day" : "April 2024") at 870 trades a minute (\(rowCount) trades)",
           Double(zipBytes) / 1_048_576, unit: "MiB zipped", digits: 0)
    record("trades_file_unpacked_mib", "   unpacked", Double(unpacked) / 1_048_576, unit: "MiB", digits: 0)
    record("trades_file_build_s", "   binance-sim's first answer (writing it, once; cached after)", buildSeconds, unit: "s", digits: 1)

    let args = ["trades", "--market", "futures", "--symbols", "BTCUSDT", "--start", start, "--end", end, "--source", "archive",
                "--api-url", sim.url, "--archive-url", sim.url, "--summary", "json"]
    let dry = try measure(extractor, args + ["--dry-run"])
    if let needed = summary(dry.stdout)["spool_needed_bytes"] as? Int {
        record("trades_file_spool_mib", "   spool disk a run needs (--dry-run)", Double(needed) / 1_048_576, unit: "MiB", digits: 0)
    }

    // MariaDB: the extractor, then LOAD DATA INFILE of the same rows into an empty table made LIKE the extractor's.
    let ours = try await database("bench_trades_file")
    let run = try measure(extractor, args + ["--mysql-uri", uriText(ours)])
    let written = Double(summary(run.stdout)["written"] as? Int ?? 0)
    let bulkURI = try await database("bench_trades_bulk")
    let pool = ConnectionPool(uri: bulkURI, size: 1)
    _ = try await pool.withConnection { try $0.execute("CREATE TABLE agg_trades LIKE `bench_trades_file`.agg_trades") }
    let loadStart = Date()
    _ = try await pool.withConnection { db in
        try db.execute("LOAD DATA INFILE '\(tsv)' INTO TABLE agg_trades (symbol, agg_trade_id, price, quantity, first_trade_id, last_trade_id, trade_time, is_buyer_maker)")
    }
    let loadSeconds = Date().timeIntervalSince(loadStart)
    let loaded = try await pool.withConnection { try $0.query("SELECT COUNT(*) FROM agg_trades").first?.first ?? nil }
    pool.shutdown()
    recordStore("mariadb", "MariaDB", bulk: "LOAD DATA INFILE", run: run, written: written, bulkRows: rowCount, bulkSeconds: loadSeconds, bulkStored: loaded)
    _ = try await database("bench_trades_file")
    _ = try await database("bench_trades_bulk")

    // PostgreSQL: the extractor, then COPY of the same rows (the file in 8 MiB pieces, cut at line ends) into an empty
    // table LIKE the extractor's.
    guard let postgresAdminText else { return }
    let pgOurs = try await freshPostgresDatabase("bench_trades_file", admin: postgresAdminText)
    let pgURL = "postgresql://\(pgOurs.user):\(pgOurs.password)@\(pgOurs.host):\(pgOurs.port)/\(pgOurs.database)"
    let pgRun = try measure(extractor, args + ["--database-url", pgURL])
    let pgWritten = Double(summary(pgRun.stdout)["written"] as? Int ?? 0)
    let pgPool = PostgresPool(uri: pgOurs, size: 1)
    _ = try await pgPool.withConnection { try $0.execute("CREATE TABLE agg_trades_bulk (LIKE agg_trades INCLUDING ALL)") }
    let columns = ["symbol", "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "trade_time", "is_buyer_maker"]
    guard let input = FileHandle(forReadingAtPath: tsv) else { throw BenchError("cannot read \(tsv)") }
    let copyStart = Date()
    var carry: [UInt8] = []
    while true {
        let piece = [UInt8](try input.read(upToCount: 8 << 20) ?? Data())
        if piece.isEmpty { break }
        guard let cut = piece.lastIndex(of: 0x0A) else { carry += piece; continue }
        let text = carry + piece[...cut]
        carry = Array(piece[(cut + 1)...])
        _ = try await pgPool.withConnection { db in
            _ = try db.execute("SET TIME ZONE 'UTC'")
            try db.copy(into: "agg_trades_bulk", columns: columns, text: text, context: "bench COPY")
        }
    }
    let copySeconds = Date().timeIntervalSince(copyStart)
    try input.close()
    let copied = try await pgPool.withConnection { try $0.query("SELECT COUNT(*) FROM agg_trades_bulk").first?.first ?? nil }
    pgPool.shutdown()
    recordStore("pg", "PostgreSQL", bulk: "COPY", run: pgRun, written: pgWritten, bulkRows: rowCount, bulkSeconds: copySeconds, bulkStored: copied)
    _ = try await freshPostgresDatabase("bench_trades_file", admin: postgresAdminText)
}

/// One store's figures of row 11: the extractor's rate, the bulk path's, their ratio, peak memory and wall time.
@MainActor func recordStore(_ key: String, _ name: String, bulk: String, run: Measured, written: Double, bulkRows: Int, bulkSeconds: Double,
                            bulkStored: String?) {
    let rate = written / run.wall, bulkRate = Double(bulkRows) / bulkSeconds
    record("trades_file_\(key)_rows_per_s", "   into \(name): trades a second (\(Int(written)) written)", rate, unit: "rows/s", digits: 0)
    record("trades_file_\(key)_bulk_rows_per_s", "   \(bulk) of the same rows (\(bulkStored ?? "?") stored)", bulkRate, unit: "rows/s", digits: 0)
    record("trades_file_\(key)_ratio", "   ratio to \(bulk)", rate / bulkRate * 100, unit: "%", target: ">= 90 %", ok: rate / bulkRate >= 0.9)
    record("trades_file_\(key)_peak_rss_mib", "   peak memory", run.maxRSSMiB, unit: "MiB", target: "< 64 MiB", ok: run.maxRSSMiB < 64, digits: 1)
    record("trades_file_\(key)_wall_s", "   wall time", run.wall, unit: "s", digits: 1)
    if run.status != 0 { print("trades file into \(name) exited \(run.status): \(run.stdout.suffix(600))") }
}
