import BinanceAPI
import Pipeline
import Telemetry

/// What `audit` found: files rechecked and changed, rows compared, each difference, holes by label, weight spent; a
/// table for a person, one JSON object for a program.
struct AuditReport: Sendable {
    struct ChangedFile: Sendable {
        let path: String
        let rowsChanged: Int
        let etag: String?
        let lastModified: String?
    }

    /// Missing stretches of one table and symbol under one label; `rows` where the grid says how many.
    struct Holes: Sendable {
        let table: String
        let symbol: String
        let label: String
        let ranges: Int
        let rows: Int64?
    }

    var filesRechecked = 0
    var filesChanged: [ChangedFile] = []
    var filesGone: [String] = []
    /// The comparisons' figures and differences (`AuditFindings`).
    var totals = AuditTotals()
    var holes: [Holes] = []
    var weight = 0
    var failures: [String] = []

    /// 1 when part of the audit could not be done, 3 when differences remain, else 0.
    var status: Int32 {
        if !failures.isEmpty { return ExitStatus.unitsFailed }
        return totals.open > 0 ? ExitStatus.differences : ExitStatus.success
    }

    var verdict: String {
        if !failures.isEmpty { return "incomplete" }
        if totals.open > 0 { return "differences" }
        // Nothing stored in the tables and symbols asked for, and no recorded file: nothing was proved.
        if totals.windows == 0 && filesRechecked == 0 { return "nothing_to_audit" }
        return totals.differenceCount > 0 ? "repaired" : "exact"
    }

    func json() -> String {
        func q(_ s: String?) -> String { s.map { LogLineHandler.quote($0) } ?? "null" }
        let differenceItems = totals.differences.map { d in
            "{\"table\":\(q(d.table)),\"symbol\":\(q(d.symbol)),\"\(d.keyIsTime ? "time" : "id")\":\(q(d.keyText)),\"column\":\(q(d.column)),"
                + "\"stored\":\(q(d.stored)),\"rest\":\(q(d.reference)),\"resolution\":\(q(d.resolution.rawValue))}"
        }
        let labels = ["exchange_downtime", "archive_hole", "local_miss"].map { label in
            let of = holes.filter { $0.label == label }
            return "\(q(label)):{\"ranges\":\(of.reduce(0) { $0 + $1.ranges }),\"rows\":\(of.reduce(Int64(0)) { $0 + ($1.rows ?? 0) })}"
        }
        let holeItems = holes.map { h in
            "{\"table\":\(q(h.table)),\"symbol\":\(q(h.symbol)),\"label\":\(q(h.label)),\"ranges\":\(h.ranges),\"rows\":\(h.rows.map(String.init) ?? "null")}"
        }
        let changed = filesChanged.map { "{\"path\":\(q($0.path)),\"rows_changed\":\($0.rowsChanged),\"etag\":\(q($0.etag)),\"last_modified\":\(q($0.lastModified))}" }
        return "{\"audit\":{\"verdict\":\(q(verdict)),\"files_rechecked\":\(filesRechecked),\"files_changed\":[\(changed.joined(separator: ","))],"
            + "\"files_gone\":[\(filesGone.map(q).joined(separator: ","))],\"windows\":\(totals.windows),\"rows_compared\":\(totals.rowsCompared),"
            + "\"differences\":\(totals.differenceCount),\"rows_differing\":\(totals.rowsDiffering),\"fixed_rows\":\(totals.fixedRows),\"kept_rows\":\(totals.keptRows),\"open\":\(totals.open),"
            + "\"listed\":[\(differenceItems.joined(separator: ","))],\"holes_by_label\":{\(labels.joined(separator: ","))},"
            + "\"holes\":[\(holeItems.joined(separator: ","))],\"weight_spent\":\(weight),"
            + "\"skipped\":[\(totals.skipped.map(q).joined(separator: ","))],\"failures\":[\(failures.map(q).joined(separator: ","))]}}"
    }

    func table() -> String {
        var lines: [String] = []
        lines.append("audit: \(verdict)")
        if filesRechecked > 0 || !filesChanged.isEmpty {
            lines.append("files rechecked \(filesRechecked), changed \(filesChanged.count), gone \(filesGone.count)")
            for file in filesChanged { lines.append("  changed  \(file.path)  rows changed \(file.rowsChanged)") }
            for path in filesGone { lines.append("  gone     \(path)") }
        }
        lines.append("compared \(totals.rowsCompared) rows in \(totals.windows) stretches; differences \(totals.differenceCount) (rows \(totals.rowsDiffering)), "
                      + "fixed rows \(totals.fixedRows), kept \(totals.keptRows), open \(totals.open); weight spent \(weight)")
        if !totals.differences.isEmpty {
            let header = ["table", "symbol", "time/id", "column", "stored", "REST", ""]
            var rows = totals.differences.map { [$0.table, $0.symbol, $0.keyText, $0.column, $0.stored ?? "(none)", $0.reference ?? "(none)",
                                          $0.resolution == .open ? "" : $0.resolution.rawValue] }
            rows.insert(header, at: 0)
            let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
            for row in rows { lines.append(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")) }
            if totals.differenceCount > totals.differences.count {
                lines.append("… \(totals.differenceCount - totals.differences.count) more (--max-listed)")
            }
        }
        if !holes.isEmpty {
            lines.append("holes:")
            for h in holes { lines.append("  \(h.table)  \(h.symbol)  \(h.label)  \(h.ranges) ranges\(h.rows.map { ", \($0) rows" } ?? "")") }
        }
        for s in totals.skipped { lines.append("skipped: \(s)") }
        for f in failures { lines.append("failed: \(f)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
