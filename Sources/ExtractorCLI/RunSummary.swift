import BinanceAPI
import Foundation
import Pipeline
import Telemetry

/// The end-of-run summary: one row per unit; a table on a terminal, one JSON line otherwise.
struct RunSummary {
    let reports: [UnitReport]
    let dryRun: Bool
    let durationMilliseconds: Int64
    let requests: RequestStats.Snapshot
    let weightUsed: Int
    let rateLimitWaitMilliseconds: Int64

    /// The run reads archive files (`--source auto|archive`): each unit says how much came from files and from REST.
    var usesArchives = false
    /// The run followed streams (`follow`): each unit says what came from the stream and what REST confirmed.
    var follows = false
    /// `follow`'s whole-run figures: events, candles committed from final events and their event-to-commit lag.
    var following: FollowMonitor.Snapshot?
    /// The spool folder of a run that reads archives, and its disk's free bytes (nil: unknown).
    var spool: (folder: String, free: Int?)?

    /// What the spool must hold at once: the largest planned files, as many as are read at once (`--dry-run`).
    var spoolNeededBytes: Int? {
        let sizes = reports.flatMap { $0.outcome.plannedFiles.compactMap(\.bytes) }.sorted(by: >)
        return sizes.isEmpty ? nil : sizes.prefix(ArchiveClient.filesInFlight).reduce(0, +)
    }


    var totalFetched: Int { reports.reduce(0) { $0 + $1.outcome.fetched } }
    /// Attempts of units started again after a failure (requests retried inside an attempt are `requests.retries`).
    var unitRetries: Int { reports.reduce(0) { $0 + $1.retries } }

    /// The unit's last stored row reaches its range's end: only a unit that succeeded and was not stopped by the
    /// catch-up cap. A failed, interrupted or unstarted unit is never caught up, whatever it wrote.
    static func caughtUp(_ r: UnitReport) -> Bool {
        guard r.status == .succeeded, let plan = r.outcome.plan else { return false }
        return r.outcome.caughtUp ?? !plan.capped
    }
    var totalWritten: Int { reports.reduce(0) { $0 + $1.outcome.written } }

    static func status(_ s: UnitReport.Status) -> String {
        switch s {
        case .succeeded: "ok"
        case .failed: "failed"
        case .interrupted: "interrupted"
        case .notStarted: "not started"
        }
    }

    static func time(_ ms: Int64?) -> String { ms.map(UTCCalendar.iso8601) ?? "-" }

    func jsonLine() -> String {
        let q = LogLineHandler.quote
        let units = reports.map { r -> String in
            var fields = [
                "\"market\":\(q(r.unit.market.rawValue))", "\"symbol\":\(q(r.unit.symbol.name))",
                "\"timeframe\":\(q(r.unit.timeframeLabel))", "\"status\":\(q(Self.status(r.status)))",
                "\"fetched\":\(r.outcome.fetched)", "\"written\":\(r.outcome.written)",
                "\"first_open_time\":\(r.outcome.firstTime.map { q(UTCCalendar.iso8601($0)) } ?? "null")",
                "\"last_open_time\":\(r.outcome.lastTime.map { q(UTCCalendar.iso8601($0)) } ?? "null")",
                "\"requests\":\(r.outcome.requests)", "\"retries\":\(r.retries)", "\"duration_ms\":\(r.durationMilliseconds)",
            ]
            if r.unit.interval != nil {
                // Kline and gap units name their candles and table (the timeframe column says `mark 1h`).
                fields.append("\"series\":\(q(r.unit.series.rawValue))")
                if let table = r.unit.table { fields.append("\"table\":\(q(table.name))") }
            }
            if let plan = r.outcome.plan {
                fields.append("\"plan\":\(q(plan.origin.rawValue))")
                fields.append("\"caught_up\":\(Self.caughtUp(r))")
            }
            if r.outcome.caughtUp != nil { fields.append("\"stalled\":\(r.outcome.stalled)") }
            if usesArchives || r.outcome.archiveFiles > 0 || r.outcome.archiveLacked > 0 {
                // Always there when the run reads the archives, even when the host could not be reached and every count is 0.
                fields.append("\"from_archive\":\(r.outcome.fromArchive)")
                fields.append("\"from_rest\":\(r.outcome.fetched - r.outcome.fromArchive)")
                fields.append("\"archive_files\":\(r.outcome.archiveFiles)")
                fields.append("\"archive_lacked\":\(r.outcome.archiveLacked)")
                // What neither a file nor REST gave (`--source archive`): from_archive + from_rest + lacking is the range.
                fields.append("\"lacking\":\(r.outcome.archiveLacked)")
                if r.outcome.unreadFileCount > 0 { fields.append("\"archive_files_unread\":\(r.outcome.unreadFileCount)") }
            }
            if follows {
                // A stream follower: candles from final events, confirmed and corrected by REST, and lost finals REST gave.
                fields.append("\"from_stream\":\(r.outcome.fromStream)")
                fields.append("\"confirmed\":\(r.outcome.confirmed)")
                fields.append("\"corrected\":\(r.outcome.corrected)")
                fields.append("\"missed_finals\":\(r.outcome.missedFinals)")
            }
            if dryRun && (!r.outcome.plannedFiles.isEmpty || !r.outcome.restRanges.isEmpty) {
                let files = r.outcome.plannedFiles.map { "{\"file\":\(q($0.name)),\"bytes\":\($0.bytes.map(String.init) ?? "null")}" }
                let ranges = r.outcome.restRanges.map { "{\"from\":\(q(UTCCalendar.iso8601($0.from))),\"to\":\(q(UTCCalendar.iso8601($0.to)))}" }
                fields.append("\"archive_files_planned\":[\(files.joined(separator: ","))]")
                fields.append("\"rest_ranges\":[\(ranges.joined(separator: ","))]")
            }
            if case .failed(let message) = r.status { fields.append("\"error\":\(q(message))") }
            return "{" + fields.joined(separator: ",") + "}"
        }
        let statuses = requests.byStatus.keys.sorted().map { "\(q(String($0))):\(requests.byStatus[$0]!)" }.joined(separator: ",")
        return "{\"summary\":{\"dry_run\":\(dryRun),\"units\":\(reports.count),\"failed\":\(reports.filter { !$0.succeeded }.count),"
            + "\"fetched\":\(totalFetched),\"written\":\(totalWritten),\"requests\":\(requests.sent),"
            + "\"retries\":\(requests.retries + unitRetries),\"request_retries\":\(requests.retries),\"unit_retries\":\(unitRetries),"
            + "\"responses\":{\(statuses)},\"weight_used\":\(weightUsed),\"rate_limit_wait_ms\":\(rateLimitWaitMilliseconds),"
            + "\"duration_ms\":\(durationMilliseconds)\(spoolJSON),\"peak_memory_bytes\":\(MemoryPolicy.peakResidentBytes.map(String.init) ?? "null")}" + followJSON + ",\"units\":[\(units.joined(separator: ","))]}"
    }

    /// `,"spool_needed_bytes":N,"spool_free_bytes":M` for a dry run that plans archive files.
    var spoolJSON: String {
        guard dryRun, let needed = spoolNeededBytes else { return "" }
        return ",\"spool_needed_bytes\":\(needed),\"spool_free_bytes\":\(spool?.free.map(String.init) ?? "null")"
    }

    /// `,"follow":{...}` for a follow run: events, candles from final events, the lag's p50 / p99 / max, corrections,
    /// reconnects.
    var followJSON: String {
        guard let f = following else { return "" }
        func ms(_ v: Int64?) -> String { v.map(String.init) ?? "null" }
        return ",\"follow\":{\"units\":\(f.units),\"events\":\(f.events),\"committed_from_stream\":\(f.committed),"
            + "\"lag_p50_ms\":\(ms(f.lagP50)),\"lag_p99_ms\":\(ms(f.lagP99)),\"lag_max_ms\":\(ms(f.lagMax)),"
            + "\"corrected\":\(f.corrected),\"reconnects\":\(f.reconnects)}"
    }

    func table() -> String {
        let header = ["market", "symbol", "tf", "status", "fetched", "written", "first open (UTC)", "last open (UTC)", "retries", "time"]
        var rows = [header]
        for r in reports {
            rows.append([r.unit.market.rawValue, r.unit.symbol.name, r.unit.timeframeLabel, Self.status(r.status),
                         "\(r.outcome.fetched)", dryRun ? "(dry run)" : "\(r.outcome.written)", Self.time(r.outcome.firstTime),
                         Self.time(r.outcome.lastTime), "\(r.retries)", String(format: "%.1fs", Double(r.durationMilliseconds) / 1000)])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max()! }
        var out = rows.map { row in
            row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        out.insert(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "), at: 1)
        var text = out.joined(separator: "\n") + "\n"
        text += "\(reports.count) units, \(reports.filter { !$0.succeeded }.count) not ok; fetched \(totalFetched), "
            + (dryRun ? "wrote nothing (dry run)" : "wrote \(totalWritten)")
            + "; \(requests.sent) requests, weight \(weightUsed), \(String(format: "%.1f", Double(durationMilliseconds) / 1000)) s"
            + (MemoryPolicy.peakResidentBytes.map { String(format: ", peak memory %.1f MiB", Double($0) / 1_048_576) } ?? "") + "\n"
        for r in reports { if case .failed(let m) = r.status { text += "  \(r.unit): \(m)\n" } }
        if let f = following {
            text += "follow: \(f.events) events; \(f.committed) candles from final events"
                + (f.lagP50.map { p50 in ", lag p50 \(p50) ms, p99 \(f.lagP99 ?? p50) ms, max \(f.lagMax ?? p50) ms" } ?? "")
                + "; \(f.corrected) corrected by REST; \(f.reconnects) reconnects\n"
        }
        if dryRun {
            for r in reports where !r.outcome.plannedFiles.isEmpty || !r.outcome.restRanges.isEmpty {
                let bytes = r.outcome.plannedFiles.compactMap(\.bytes).reduce(0, +)
                text += "\(r.unit): would read \(r.outcome.plannedFiles.count) archive files"
                    + String(format: " (%.1f MB)", Double(bytes) / 1_000_000) + ", the rest from REST\n"
                for f in r.outcome.plannedFiles { text += "  file  \(f.name)  \(f.bytes.map { "\($0) bytes" } ?? "size unknown")\n" }
                for range in r.outcome.restRanges { text += "  REST  \(UTCCalendar.iso8601(range.from)) .. \(UTCCalendar.iso8601(range.to))\n" }
            }
            if let needed = spoolNeededBytes {
                let mb = { (b: Int) in String(format: "%.1f MB", Double(b) / 1_000_000) }
                text += "spool: needs \(mb(needed)) free (the \(ArchiveClient.filesInFlight) largest files, read at once)"
                if let (folder, free) = spool {
                    text += " in \(folder)" + (free.map { ", which has \(mb($0))" + ($0 < needed ? ": NOT ENOUGH, set --spool-dir" : "") } ?? "")
                }
                text += "\n"
            }
        }
        return text
    }
}
