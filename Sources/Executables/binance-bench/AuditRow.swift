import BinanceAPI
import BinanceArchive
import Foundation
import MariaDBStore
import StoreKit

// Row 12: `audit` at a year's scale. A year of 1h klines of 20 symbols (quick: 30 days of 2) is stored from REST, then
// proved against REST (`audit --start --end`): its time, the weight it spent, and that time as a multiple of the
// database ceiling's time for the rows compared (row 1). Then `audit --recheck-archives` over a ledger of a year of 1m
// monthly files of the 20 symbols (quick: one month of 2): one HEAD per file, no weight, nothing downloaded (the
// ledger rows carry no validators to differ from).
@MainActor func auditRow() async throws {
    let symbolCount = quick ? 2 : 20
    let days: Int64 = quick ? 30 : 365
    // Unthrottled, as row 2: the time is the extractor's and the database's; the weight says what Binance would charge.
    let sim = try Simulator(["--extra-symbols", "20", "--cache-pages", "--weight-limit", "100000000"])
    defer { sim.stop() }
    let names = (0..<symbolCount).map { "BENCH" + String(format: "%03d", $0) + "USDT" }
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    let end = now - now % day, start = end - days * day
    let uri = try await database("bench_audit")
    let common = ["--symbols", names.joined(separator: ","), "--api-url", sim.url, "--mysql-uri", uriText(uri), "--max-workers", "4"]
    let fill = try measure(extractor, ["klines", "--source", "rest", "--timeframes", "1h", "--start", day(start), "--end", day(end), "--summary", "json"] + common)
    if fill.status != 0 { print("klines exited \(fill.status): \(fill.stdout.suffix(300))") }
    let audit = try measure(extractor, ["audit", "--timeframes", "1h", "--start", day(start), "--end", day(end), "--format", "json"] + common)
    let report = auditReport(audit.stdout)
    if audit.status != 0 { print("audit exited \(audit.status): \(audit.stdout.suffix(600))") }
    let compared = Double(report["rows_compared"] as? Int ?? 0)
    let weight = Double(report["weight_spent"] as? Int ?? 0)
    let ceiling = json["db_ceiling_rows_per_s"] as? Double ?? .nan
    record("audit_year_s", "12. audit \(symbolCount) symbols x 1h x \(days) d against REST (\(Int(compared)) rows, \(report["verdict"] as? String ?? "?"))",
           audit.wall, unit: "s", ok: audit.status == 0 && report["verdict"] as? String == "exact", digits: 1)
    record("audit_year_weight", "   weight spent", weight, unit: "weight", digits: 0)
    record("audit_year_minutes_at_2400", "   at Binance's USD-M budget (2400 a minute)", weight / 2400, unit: "min", digits: 1)
    record("audit_year_ratio_to_ceiling", "   as a multiple of the database ceiling's time for those rows", audit.wall / (compared / ceiling), unit: "x", digits: 0)
    record("audit_year_peak_rss_mib", "   peak memory", audit.maxRSSMiB, unit: "MiB", digits: 1)

    // The ledger of a year of monthly 1m files (the last 12 closed months), as runs reading them would have left it.
    let pool = ConnectionPool(uri: uri, size: 1)
    defer { pool.shutdown() }
    _ = try await SchemaMigrator(pool: pool).migrate([KlineTable(market: .futures, interval: .m1)])
    var months: [ArchiveFile.Period] = []
    var month = UTCCalendar.startOfMonth(containing: end) - 1
    for _ in 0..<(quick ? 1 : 12) {
        let first = UTCCalendar.startOfMonth(containing: month)
        let iso = UTCCalendar.iso8601(first)
        months.append(.month(year: Int(iso.prefix(4))!, month: Int(iso.dropFirst(5).prefix(2))!))
        month = first - 1
    }
    var rows: [[ColumnValue]] = []
    for name in names {
        for period in months {
            let file = ArchiveFile(market: .futures, dataset: .klines(.m1), symbol: try Symbol(validating: name), period: period)
            rows.append(ArchiveFileRecord(path: file.path, market: .futures, dataset: file.datasetFolder, symbol: name, series: file.seriesText,
                                          period: file.periodText, table: "klines_m1", size: nil, etag: nil, lastModified: nil,
                                          sha256: String(repeating: "0", count: 64), rowsRead: 0, rowsWritten: 0, readAt: now).values(build: "bench"))
        }
    }
    _ = try await MariaDBCatalogueWriter(pool: pool).write(ArchiveLedgerTable.definition, rows: rows)
    // The simulator writes each file once before it can answer a HEAD with its size: a first pass builds them.
    _ = try measure(extractor, ["audit", "--recheck-archives", "--timeframes", "1m", "--format", "json", "--archive-url", sim.url] + common)
    let recheck = try measure(extractor, ["audit", "--recheck-archives", "--timeframes", "1m", "--format", "json", "--archive-url", sim.url] + common)
    let rechecked = auditReport(recheck.stdout)
    if recheck.status != 0 { print("audit --recheck-archives exited \(recheck.status): \(recheck.stdout.suffix(600))") }
    let files = Double(rechecked["files_rechecked"] as? Int ?? 0)
    record("audit_recheck_s", "   --recheck-archives of \(Int(files)) monthly 1m files (HEAD only)", recheck.wall, unit: "s",
           ok: recheck.status == 0 && files == Double(rows.count), digits: 2)
    record("audit_recheck_files_per_s", "   files rechecked a second", files / recheck.wall, unit: "files/s", digits: 0)
    record("audit_recheck_weight", "   weight spent", Double(rechecked["weight_spent"] as? Int ?? -1), unit: "weight", target: "0",
           ok: rechecked["weight_spent"] as? Int == 0, digits: 0)
}

/// The `audit` object of a report's JSON line.
func auditReport(_ stdout: String) -> [String: Any] {
    let line = stdout.split(separator: "\n").last.map(String.init) ?? "{}"
    return ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["audit"] as? [String: Any] ?? [:]
}
