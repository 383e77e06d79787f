import BinanceAPI
import BinanceSimulator
import BuildInfo
import Foundation
import PostgresStore
import MariaDBStore
import StoreKit

// `make bench`: every figure of the benchmark in one run, against binance-sim and a real MariaDB, so ratios hold
// on a noisy machine. Prints a table and writes JSON. Release binaries of binance-extractor and binance-sim are
// run as child processes, so their CPU time and peak memory are their own.

let env = ProcessInfo.processInfo.environment
switch CommandLine.arguments.dropFirst().first {
case "--version":
    print(BuildInfo.version)
    exit(0)
case "--help", "-h":
    print("binance-bench: make bench's figures (BENCH_MYSQL_URI, BENCH_POSTGRES_URI, BENCH_BIN_DIR, BENCH_OUTPUT, BENCH_QUICK=1, BENCH_ONLY=1,8); no arguments")
    exit(0)
case let other?:
    FileHandle.standardError.write(Data("binance-bench: unknown argument '\(other)'; it takes none (only --version, --help)\n".utf8))
    exit(2)
case nil:
    break
}
let binDir = env["BENCH_BIN_DIR"] ?? ".build/release"
let adminURIText = env["BENCH_MYSQL_URI"] ?? "mysql://root:test@127.0.0.1:33306/mysql"
/// PostgreSQL for row 9 (make bench starts one); without it, row 9 is skipped.
let postgresAdminText = env["BENCH_POSTGRES_URI"]
let output = env["BENCH_OUTPUT"] ?? ".build-bench/results.json"
let quick = env["BENCH_QUICK"] == "1"
/// BENCH_ONLY=1,8: only these rows (row 1, the database ceiling, is what ratios are taken against).
let only: Set<Int>? = env["BENCH_ONLY"].map { Set($0.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }) }
func row(_ n: Int) -> Bool { only?.contains(n) ?? true }


var results: [(name: String, value: String, target: String, ok: Bool?)] = []
var json: [String: Any] = [:]
@MainActor func record(_ key: String, _ name: String, _ value: Double, unit: String, target: String = "", ok: Bool? = nil, digits: Int = 0) {
    json[key] = value
    results.append((name, String(format: "%.\(digits)f %@", value, unit), target, ok))
}

let extractor = "\(binDir)/binance-extractor"
let day: Int64 = 86_400_000
let start2024 = UTCCalendar.parse("2024-01-01")!

// 1. Database ceiling: kline rows through array binding, with the project's schema and pool, 4 connections.
if row(1) {
    let uri = try await database("bench_ceiling")
    let pool = ConnectionPool(uri: uri, size: 4)
    defer { pool.shutdown() }
    let table = KlineTable(market: .futures, interval: .m1)
    _ = try await SchemaMigrator(pool: pool).migrate([table])
    let market = SimulatedMarket.standard(now: Int64(Date().timeIntervalSince1970 * 1000))
    let rowsPerWriter = quick ? 100_000 : 216_000
    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
    var batches: [[Kline]] = []
    for (w, name) in symbols.enumerated() {
        let s = market.symbols[name]!
        let rows = market.klines(symbol: s, interval: .m1, start: start2024 + Int64(w) * 0, end: start2024 + Int64(rowsPerWriter) * 60_000 - 1,
                                 limit: rowsPerWriter, now: .max)
        stride(from: 0, to: rows.count, by: 2000).forEach { batches.append(Array(rows[$0..<min($0 + 2000, rows.count)])) }
    }
    let store = KlineStore(pool: pool)
    let began = Date()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for (w, name) in symbols.enumerated() {
            let mine = batches.enumerated().filter { $0.offset % symbols.count == w }.map(\.element)
            group.addTask {
                let symbol = try Symbol(validating: name)
                for batch in mine { try await store.upsert(table: table, symbol: symbol, klines: batch) }
            }
        }
        try await group.waitForAll()
    }
    let total = Double(batches.reduce(0) { $0 + $1.count })
    record("db_ceiling_rows_per_s", "1. database ceiling (4 connections, array binding)", total / Date().timeIntervalSince(began), unit: "rows/s")
}

// 2. Backfill throughput: 20 symbols x 1m x 30 days, end to end into MariaDB.
if row(2) {
    let days: Int64 = quick ? 7 : 30
    // Unthrottled: this measures the extractor and the database, not Binance's budget (that is step 3).
    let sim = try Simulator(["--extra-symbols", "20", "--cache-pages", "--weight-limit", "100000000"])
    defer { sim.stop() }
    let symbols = (0..<20).map { "BENCH" + String(format: "%03d", $0) + "USDT" }.joined(separator: ",")
    let args = ["klines", "--source", "rest", "--timeframes", "1m", "--symbols", symbols, "--start", "2024-01-01", "--end", day(start2024 + days * 86_400_000),
                "--api-url", sim.url, "--max-workers", "4", "--summary", "json"]
    _ = try measure(extractor, args + ["--dry-run"])  // warms the simulator's page cache: it must not be the bottleneck
    let uri = try await database("bench_backfill")
    let run = try measure(extractor, args + ["--mysql-uri", uriText(uri)])
    let s = summary(run.stdout)
    let written = Double(s["written"] as? Int ?? 0)
    let rate = written / run.wall
    let ceiling = json["db_ceiling_rows_per_s"] as? Double ?? .nan
    record("backfill_klines_per_s", "2. backfill 20 symbols x 1m x \(days) d (\(Int(written)) klines)", rate, unit: "klines/s",
           target: ">= 100,000", ok: rate >= 100_000)
    record("backfill_ratio_to_ceiling", "   ratio to the database ceiling", rate / ceiling * 100, unit: "%", target: ">= 70 %", ok: rate / ceiling >= 0.7)
    record("backfill_cpu_s", "   CPU time (user + system)", run.cpu, unit: "s", digits: 2)
    record("backfill_peak_rss_mib", "   peak memory", run.maxRSSMiB, unit: "MiB", digits: 1)
    record("backfill_wall_s", "   wall time", run.wall, unit: "s", digits: 2)
    if run.status != 0 { print("backfill exited \(run.status): \(run.stdout.prefix(300))") }
    // The same run with export turned off: a telemetry stall would show as the gap between the two. One run varies by
    // half a second here, and a run right after a large write or DROP DATABASE pays for the server's background
    // flushing, so each side runs twice, in turns, each into a fresh database after the server has settled.
    var defaults: [Double] = [], quiets: [Double] = []
    for _ in 0..<2 {
        for quietRun in [true, false] {
            let uri = try await database("bench_backfill_compare")
            try await Task.sleep(nanoseconds: 3_000_000_000)
            let measured = try measure(extractor, args + ["--mysql-uri", uriText(uri)],
                                       environment: quietRun ? ["OTEL_SDK_DISABLED": "true"] : [:])
            if quietRun { quiets.append(measured.wall) } else { defaults.append(measured.wall) }
        }
    }
    let bestDefault = defaults.min() ?? run.wall, bestQuiet = quiets.min() ?? 0
    record("backfill_wall_default_best_s", "   wall time, default environment (best of 2)", bestDefault, unit: "s", digits: 2)
    record("backfill_wall_otel_disabled_s", "   wall time with OTEL_SDK_DISABLED=true (best of 2)", bestQuiet, unit: "s",
           target: "~ default", ok: bestDefault - bestQuiet < 0.5, digits: 2)
}

// 3. Budget use: Binance's futures limit on a squeezed window (2400 weight per 10 s).
if row(3) {
    let sim = try Simulator(["--weight-limit", "2400", "--window-seconds", "10", "--extra-symbols", "20"])
    defer { sim.stop() }
    let symbols = (0..<20).map { "BENCH" + String(format: "%03d", $0) + "USDT" }.joined(separator: ",")
    // More demand than three windows can serve; the run is stopped after them.
    let args = ["klines", "--source", "rest", "--timeframes", "1m", "--symbols", symbols, "--start", "2022-01-01", "--end", "2024-01-01", "--api-url", sim.url,
                "--max-workers", "4", "--dry-run", "--shutdown-timeout", "5"]
    let process = Process()
    process.executableURL = URL(fileURLWithPath: extractor)
    process.arguments = args
    process.environment = defaultEnvironment
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    try await Task.sleep(nanoseconds: quick ? 22_000_000_000 : 42_000_000_000)
    process.interrupt()
    process.waitUntilExit()
    let stats = try sim.stats()
    let windows = (stats["weightByWindow"] as? [String: Int] ?? [:]).sorted { Int64($0.key)! < Int64($1.key)! }
    // Full windows only: not the first (the run started inside it) nor the last (stopped inside it).
    let full = windows.dropFirst().dropLast()
    let used = full.reduce(0) { $0 + $1.value }
    let share = full.isEmpty ? 0 : Double(used) / Double(2400 * full.count) * 100
    let byStatus = stats["byStatus"] as? [String: Int] ?? [:]
    record("budget_share_percent", "3. budget use (2400 weight / 10 s, \(full.count) full windows)", share, unit: "%", target: ">= 95 %", ok: share >= 95, digits: 1)
    record("budget_429", "   HTTP 429 answers", Double(byStatus["429"] ?? 0), unit: "", target: "0", ok: (byStatus["429"] ?? 0) == 0)
}

// 4. Memory: a one-year 1m backfill of one symbol (525,600 candles).
if row(4) {
    let sim = try Simulator(["--extra-symbols", "1", "--cache-pages", "--weight-limit", "100000000"])
    defer { sim.stop() }
    let end = quick ? "2023-04-01" : "2024-01-01"
    let args = ["klines", "--source", "rest", "--timeframes", "1m", "--symbols", "BENCH000USDT", "--start", "2023-01-01", "--end", end, "--api-url", sim.url]
    _ = try measure(extractor, args + ["--dry-run"])
    let uri = try await database("bench_memory")
    let run = try measure(extractor, args + ["--mysql-uri", uriText(uri), "--summary", "json"])
    let written = summary(run.stdout)["written"] as? Int ?? 0
    record("year_backfill_peak_rss_mib", "4. peak memory, one-year 1m backfill (\(written) klines)", run.maxRSSMiB, unit: "MiB", target: "< 64 MiB",
           ok: run.maxRSSMiB < 64, digits: 1)
}

// 5. Up-to-date run: 200 symbols already current, one timeframe.
if row(5) {
    let sim = try Simulator(["--extra-symbols", "200"])
    defer { sim.stop() }
    let symbols = (0..<200).map { "BENCH" + String(format: "%03d", $0) + "USDT" }.joined(separator: ",")
    let uri = try await database("bench_current")
    let args = ["klines", "--timeframes", "1h", "--symbols", symbols, "--api-url", sim.url, "--mysql-uri", uriText(uri), "--max-workers", "8",
                "--lookback-hours", "3", "--summary", "json"]
    _ = try measure(extractor, args)  // makes them current
    let before = try sim.stats()["klinesRequests"] as? Int ?? 0
    let run = try measure(extractor, args)
    let requests = (try sim.stats()["klinesRequests"] as? Int ?? 0) - before
    record("current_run_requests", "5. up-to-date run, 200 symbols: klines requests", Double(requests), unit: "", target: "200", ok: requests == 200)
    record("current_run_wall_s", "   wall time", run.wall, unit: "s", target: "< 2 s", ok: run.wall < 2, digits: 2)
}

// 6. Start-up: to --help, and to the first request Binance sees.
if row(6) {
    var helps: [Double] = []
    for _ in 0..<10 { helps.append(try measure(extractor, ["--help"]).wall) }
    let help = helps.sorted()[helps.count / 2] * 1000
    record("startup_help_ms", "6. start-up to --help (median of 10)", help, unit: "ms", digits: 1)
    let sim = try Simulator([])
    defer { sim.stop() }
    var firsts: [Double] = []
    for _ in 0..<5 {
        let launched = Date().timeIntervalSince1970 * 1000
        _ = try measure(extractor, ["klines", "--timeframes", "1h", "--symbols", "BTCUSDT", "--dry-run", "--api-url", sim.url])
        if let first = try sim.stats()["firstRequestAt"] as? Int64 ?? (try sim.stats()["firstRequestAt"] as? Int).map(Int64.init) {
            firsts.append(Double(first) - launched)
        }
        // A fresh simulator for the next launch would be fairer; stats are cumulative, so keep the first launch only.
        break
    }
    let first = firsts.first ?? -1
    record("startup_first_request_ms", "   start-up to the first request", first, unit: "ms", target: "< 50 ms", ok: first >= 0 && first < 50, digits: 1)
}

// 7. Real-world speed: Binance's own futures budget (2,400 weight a minute, binance-sim's default), a multi-day 1m
// backfill larger than one minute's budget, so the figure is what the budget allows, not what one burst does.
if row(7) {
    let symbolCount = quick ? 30 : 40
    let sim = try Simulator(["--extra-symbols", "\(symbolCount)", "--cache-pages"])
    defer { sim.stop() }
    let symbols = (0..<symbolCount).map { "BENCH" + String(format: "%03d", $0) + "USDT" }.joined(separator: ",")
    let uri = try await database("bench_real_budget")
    let args = ["klines", "--source", "rest", "--timeframes", "1m", "--symbols", symbols, "--start", "2024-01-01", "--end", "2024-01-31",
                "--api-url", sim.url, "--mysql-uri", uriText(uri), "--summary", "json"]
    let run = try measure(extractor, args)
    let s = summary(run.stdout)
    let written = Double(s["written"] as? Int ?? 0)
    let weight = Double(s["weight_used"] as? Int ?? 0)
    let stats = try sim.stats()
    let byStatus = stats["byStatus"] as? [String: Int] ?? [:]
    // Weight in the minutes the run spanned whole (not the first, where it began, nor the last, where it ended).
    let windows = (stats["weightByWindow"] as? [String: Int] ?? [:]).sorted { (Int64($0.key) ?? 0) < (Int64($1.key) ?? 0) }
    let full = windows.dropFirst().dropLast()
    // At most 2,400 weight a minute and 499 klines for weight 2 (Market.mostKlinesPerWeightLimit): about 9,980 a second
    // once the first minute's budget is spent. A run of a minute or two also spends the budget of the minute it began
    // in and the one it ended in, so its whole-run rate is higher than what a long backfill sees: the main figure is
    // the pace inside the whole minutes (every request there is a full page of 499 klines).
    if !full.isEmpty {
        let perWindow = Double(full.reduce(0) { $0 + $1.value }) / Double(full.count)
        let pace = perWindow / 2 * Double(Market.futures.mostKlinesPerWeightLimit) / 60
        record("real_budget_klines_per_s", "7. futures budget 2400/min: \(symbolCount) symbols x 1m x 30 d, klines/s in whole minutes",
               pace, unit: "klines/s", target: "~ 10,000", ok: pace >= 9_000 && pace <= 10_000, digits: 0)
        record("real_budget_full_window_weight", "   weight in each whole minute (\(full.count))", perWindow, unit: "", target: "<= 2,400",
               ok: perWindow <= 2_400, digits: 0)
    } else {
        print("7. the real-budget run spanned no whole minute: no pace to report")
    }
    record("real_budget_klines_per_s_whole_run", "   klines/s over the whole run (\(Int(written)) klines, first and last minute included)",
           written / run.wall, unit: "klines/s", digits: 0)
    record("real_budget_weight_per_min", "   weight used per minute, whole run", weight / run.wall * 60, unit: "", digits: 0)
    record("real_budget_429", "   HTTP 429 answers", Double(byStatus["429"] ?? 0), unit: "", target: "0", ok: (byStatus["429"] ?? 0) == 0)
    record("real_budget_wall_s", "   wall time", run.wall, unit: "s", digits: 1)
    if run.status != 0 { print("real-budget backfill exited \(run.status): \(run.stdout.prefix(300))") }
}

// 8. Archives: a one-year 1m backfill of 20 symbols from binance-sim's archive tree (files generated and cached by a
// dry run first, so the simulator is not what is measured), in the default environment's --source auto.
if row(8) {
    let symbolCount = 20
    let sim = try Simulator(["--extra-symbols", "\(symbolCount)"])
    defer { sim.stop() }
    let symbols = (0..<symbolCount).map { "BENCH" + String(format: "%03d", $0) + "USDT" }.joined(separator: ",")
    let end = quick ? "2025-04-01" : "2026-01-01"
    let args = ["klines", "--timeframes", "1m", "--symbols", symbols, "--start", "2025-01-01", "--end", end, "--api-url", sim.url,
                "--summary", "json"]
    _ = try measure(extractor, args + ["--dry-run"], environment: ["BINANCE_ARCHIVE_URL": sim.url])
    let uri = try await database("bench_archive")
    let run = try measure(extractor, args + ["--mysql-uri", uriText(uri)], environment: ["BINANCE_ARCHIVE_URL": sim.url])
    let s = summary(run.stdout)
    let written = Double(s["written"] as? Int ?? 0)
    let rate = written / run.wall
    let ceiling = json["db_ceiling_rows_per_s"] as? Double ?? 1
    let fromArchive = (try? JSONSerialization.jsonObject(with: Data((run.stdout.split(separator: "\n").last ?? "").utf8)) as? [String: Any])?["units"]
        .flatMap { $0 as? [[String: Any]] }?.reduce(0) { $0 + ($1["from_archive"] as? Int ?? 0) } ?? 0
    record("archive_backfill_klines_per_s", "8. archive backfill \(symbolCount) symbols x 1m x \(quick ? 3 : 12) months (\(Int(written)) klines)", rate,
           unit: "klines/s", digits: 0)
    record("archive_ratio_to_ceiling", "   ratio to the database ceiling", rate / ceiling * 100, unit: "%", target: ">= 70 %", ok: rate / ceiling >= 0.7)
    record("archive_rows_from_files", "   rows from archive files", Double(fromArchive), unit: "", target: "all", ok: Double(fromArchive) == written)
    record("archive_weight", "   REST weight spent", Double(s["weight_used"] as? Int ?? 0), unit: "", target: "exchangeInfo only")
    record("archive_peak_rss_mib", "   peak memory", run.maxRSSMiB, unit: "MiB", target: "< 64 MiB", ok: run.maxRSSMiB < 64, digits: 1)
    record("archive_wall_s", "   wall time", run.wall, unit: "s", digits: 1)
    if run.status != 0 { print("archive backfill exited \(run.status): \(run.stdout.prefix(300))") }
}

// 9. PostgreSQL: row 2's backfill into PostgreSQL, against COPY of the same number of kline rows into an empty table of
// the same schema (4 connections, as the extractor's pool), measured in the same run.
if row(9), let postgresAdminText {
    let days: Int64 = quick ? 7 : 30
    func postgresDatabase(_ name: String) async throws -> PostgresURI { try await freshPostgresDatabase(name, admin: postgresAdminText) }
    // The ceiling: COPY straight into an empty table, 4 writers, 50,000 rows a COPY.
    let ceilingURI = try await postgresDatabase("bench_pg_ceiling")
    let pool = PostgresPool(uri: ceilingURI, size: 4)
    let table = KlineTable(market: .futures, interval: .m1)
    try await PostgresKlineStore(pool: pool).create([table])
    let market = SimulatedMarket.standard(now: Int64(Date().timeIntervalSince1970 * 1000))
    let total = Int(days) * 1440 * 20
    let names = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
    var chunks: [[UInt8]] = []
    for name in names {
        let rows = market.klines(symbol: market.symbols[name]!, interval: .m1, start: start2024, end: start2024 + Int64(total / 4) * 60_000 - 1,
                                 limit: total / 4, now: .max)
        let symbol = try Symbol(validating: name)
        stride(from: 0, to: rows.count, by: 50_000).forEach {
            chunks.append(PostgresKlineStore.copyText(table: table, symbol: symbol, klines: Array(rows[$0..<min($0 + 50_000, rows.count)])))
        }
    }
    let began = Date()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for w in 0..<4 {
            let mine = chunks.enumerated().filter { $0.offset % 4 == w }.map(\.element)
            group.addTask {
                for text in mine {
                    try await pool.withConnection { try $0.copy(into: table.name, columns: KlineTable.columns, text: text, context: "bench COPY") }
                }
            }
        }
        try await group.waitForAll()
    }
    let ceiling = Double(total) / Date().timeIntervalSince(began)
    pool.shutdown()
    record("pg_copy_ceiling_rows_per_s", "9. PostgreSQL: COPY into an empty table (4 connections, \(total) rows)", ceiling, unit: "rows/s")
    // The backfill, as row 2's, into PostgreSQL.
    let sim = try Simulator(["--extra-symbols", "20", "--cache-pages", "--weight-limit", "100000000"])
    defer { sim.stop() }
    let symbols = (0..<20).map { "BENCH" + String(format: "%03d", $0) + "USDT" }.joined(separator: ",")
    let args = ["klines", "--source", "rest", "--timeframes", "1m", "--symbols", symbols, "--start", "2024-01-01", "--end", day(start2024 + days * 86_400_000),
                "--api-url", sim.url, "--max-workers", "4", "--summary", "json"]
    _ = try measure(extractor, args + ["--dry-run"])
    let uri = try await postgresDatabase("bench_pg_backfill")
    let run = try measure(extractor, args + ["--database-url", "postgresql://\(uri.user):\(uri.password)@\(uri.host):\(uri.port)/\(uri.database)"])
    let written = Double(summary(run.stdout)["written"] as? Int ?? 0)
    let rate = written / run.wall
    record("pg_backfill_klines_per_s", "   backfill 20 symbols x 1m x \(days) d into PostgreSQL (\(Int(written)) klines)", rate, unit: "klines/s")
    record("pg_backfill_ratio_to_copy", "   ratio to COPY into an empty table", rate / ceiling * 100, unit: "%", target: ">= 60 %", ok: rate / ceiling >= 0.6)
    record("pg_backfill_peak_rss_mib", "   peak memory", run.maxRSSMiB, unit: "MiB", target: "< 64 MiB", ok: run.maxRSSMiB < 64, digits: 1)
    record("pg_backfill_wall_s", "   wall time", run.wall, unit: "s", digits: 2)
    if run.status != 0 { print("PostgreSQL backfill exited \(run.status): \(run.stdout.prefix(300))") }
}

// 10. Live follow at 1,000 streams: 200 USD-M symbols x 5 timeframes at Binance's update rate (a futures kline stream
// sends 4 events a second: 4,000 a second in all), into MariaDB, on the real clock. Then the hole a 10-minute absence
// leaves (the newest 10 minutes of every table deleted), closed by a restarted follower's catch-up.
if row(10) {
    func waitReady(_ port: UInt16, seconds: Double) async throws -> Double? {
        let began = Date()
        while Date().timeIntervalSince(began) < seconds {
            if let answer = localGet(port: port, path: "/readyz"), answer.status == 200 { return Date().timeIntervalSince(began) }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        return nil
    }
    let sim = try Simulator(["--extra-symbols", "200"])
    defer { sim.stop() }
    let symbols = (0..<200).map { "BENCH" + String(format: "%03d", $0) + "USDT" }.joined(separator: ",")
    let timeframes: [KlineInterval] = [.m1, .m3, .m5, .m15, .m30]
    let uri = try await database("bench_follow")
    let port = freePort()
    let args = ["follow", "--market", "futures", "--symbols", symbols, "--timeframes", timeframes.map(\.rawValue).joined(separator: ","),
                "--ws-url", sim.url.replacingOccurrences(of: "http://", with: "ws://") + "/market", "--api-url", sim.url,
                "--mysql-uri", uriText(uri), "--lookback-hours", "1", "--source", "rest", "--summary", "json",
                "--health-port", "\(port)", "--health-address", "127.0.0.1"]
    let follower = try Running(extractor, args)
    let ready = try await waitReady(port, seconds: 300)
    // Steady state through two or more minute closes: every 1m final, and the longer timeframes' that fall due.
    let cpuBefore = follower.cpuSeconds, steadyFrom = Date()
    try await Task.sleep(nanoseconds: 5_000_000_000)
    let settled = follower.residentMiB
    try await Task.sleep(nanoseconds: UInt64((quick ? 65 : 125) * 1e9))
    let cores = (follower.cpuSeconds - cpuBefore) / Date().timeIntervalSince(steadyFrom)
    let peak = follower.peakMiB
    let end = follower.residentMiB
    let (status, out) = follower.stop()
    let line = out.split(separator: "\n").last.map(String.init) ?? "{}"
    let follow = ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["follow"] as? [String: Any] ?? [:]
    let p50 = Double(follow["lag_p50_ms"] as? Int ?? -1), p99 = Double(follow["lag_p99_ms"] as? Int ?? -1)
    // The database's own bulk path for what a minute's close brings: 1,000 candles of 200 symbols in one statement.
    let pool = ConnectionPool(uri: uri, size: 1)
    defer { pool.shutdown() }
    let market = SimulatedMarket.standard(now: Int64(Date().timeIntervalSince1970 * 1000))
    let candles = market.klines(symbol: market.symbols["BTCUSDT"]!, interval: .m1, start: start2024, end: start2024 + 5 * 60_000 - 1, limit: 5, now: .max)
    let groups = try (0..<200).map { KlineGroup(symbol: try Symbol(validating: "BULK" + String(format: "%03d", $0) + "USDT"), klines: candles) }
    var bulk: [Double] = []
    for _ in 0..<5 {
        let began = Date()
        try await KlineStore(pool: pool).upsert(table: KlineTable(market: .futures, interval: .m1), groups: groups)
        bulk.append(Date().timeIntervalSince(began) * 1000)
    }
    let bulkMs = bulk.sorted()[bulk.count / 2]
    record("follow_ready_s", "10. follow 1,000 streams (200 symbols x 5 timeframes): ready (caught up an hour, streaming)", ready ?? -1, unit: "s",
           ok: ready != nil, digits: 1)
    record("follow_lag_p50_ms", "   event-to-commit lag p50 (\(follow["committed_from_stream"] as? Int ?? 0) candles from final events)", p50, unit: "ms", digits: 0)
    record("follow_lag_p99_ms", "   event-to-commit lag p99", p99, unit: "ms", target: "<= 100 ms", ok: p99 >= 0 && p99 <= 100, digits: 0)
    record("follow_bulk_commit_ms", "   the database's bulk path: 1,000 candles in one statement (median of 5)", bulkMs, unit: "ms", digits: 1)
    record("follow_lag_p99_ratio_to_bulk", "   lag p99 as a multiple of that bulk commit", p99 / bulkMs, unit: "x", digits: 1)
    record("follow_cpu_cores", "   CPU while streaming (\(follow["events"] as? Int ?? 0) events)", cores, unit: "cores", target: "< 1", ok: cores < 1, digits: 2)
    record("follow_peak_rss_mib", "   peak memory (resident, shared library code included)", peak, unit: "MiB", target: "<= 64 MiB", ok: peak <= 64, digits: 1)
    record("follow_private_mib", "   of which private (anonymous) at the end", end.private, unit: "MiB", digits: 1)
    record("follow_rss_growth_mib", "   resident growth over the steady minutes", end.all - settled.all, unit: "MiB", target: "~ 0 (flat)",
           ok: end.all - settled.all < 4, digits: 1)
    if status != 0 { print("follow exited \(status): \(out.suffix(300))") }
    // The hole: the newest 10 minutes of every table gone, as after a 10-minute absence; a new follower closes it.
    var deleted = 0
    for interval in timeframes {
        let table = KlineTable(market: .futures, interval: interval).name
        let n = try await pool.withConnection { db -> UInt64 in
            try db.execute("DELETE t FROM `\(table)` t JOIN (SELECT MAX(open_time) AS m FROM `\(table)`) x ON t.open_time > x.m - INTERVAL 10 MINUTE")
        }
        deleted += Int(n)
    }
    let second = try Running(extractor, args)
    let closed = try await waitReady(port, seconds: 300)
    let (secondStatus, _) = second.stop()
    let ceiling = json["db_ceiling_rows_per_s"] as? Double ?? .nan
    record("follow_hole_close_s", "   a 10-minute hole (\(deleted) candles) closed: start to ready", closed ?? -1, unit: "s", ok: closed != nil, digits: 1)
    record("follow_hole_ratio_to_ceiling", "   as a multiple of the database ceiling's time for those rows", (closed ?? .nan) / (Double(deleted) / ceiling),
           unit: "x", digits: 0)
    if secondStatus != 0 { print("the second follow exited \(secondStatus)") }
}

// 11. A monthly aggTrades file of a busy symbol (about 1 GB zipped), in each store, against the store's own bulk load.
if row(11) { try await tradesFileRow() }

// 12. audit: a year of 1h klines of 20 symbols proved against REST; a recheck of a year of 1m files (HEAD only).
if row(12) { try await auditRow() }

// Report.
let width = results.map(\.name.count).max() ?? 40
print("\nbinance-extractor benchmark (\(ProcessInfo.processInfo.processorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB)\n")
for r in results {
    let mark = r.ok.map { $0 ? "ok" : "MISSED" } ?? ""
    print(r.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + r.value.padding(toLength: 18, withPad: " ", startingAt: 0)
          + "  " + r.target.padding(toLength: 10, withPad: " ", startingAt: 0) + "  " + mark)
}
json["machine"] = ["cores": ProcessInfo.processInfo.processorCount, "memory_gib": Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824,
                   "os": ProcessInfo.processInfo.operatingSystemVersionString]
json["date"] = ISO8601DateFormatter().string(from: Date())
try FileManager.default.createDirectory(atPath: (output as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
/// JSON has no NaN or infinity: a figure not measured (a row left out by BENCH_ONLY, a ratio without its ceiling) is null.
func jsonSafe(_ value: Any) -> Any {
    switch value {
    case let number as Double: return number.isFinite ? number : NSNull()
    case let dictionary as [String: Any]: return dictionary.mapValues(jsonSafe)
    case let array as [Any]: return array.map(jsonSafe)
    default: return value
    }
}
try JSONSerialization.data(withJSONObject: jsonSafe(json), options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: output))
print("\nwritten to \(output)")
