import BinanceAPI
import Foundation
import Logging
import StoreKit
import Telemetry

/// `binance-extractor coverage`: what the database holds, per table and symbol, as a table or one JSON line.
struct CoverageReport {
    var series: [SeriesCoverage]
    /// Tables that exist but could not be read as the project's (their shape), with the reason.
    var notes: [String]

    var complete: Int { series.filter { $0.complete == true }.count }
    var incomplete: Int { series.filter { $0.complete == false }.count }

    func jsonLine() -> String {
        let q = LogLineHandler.quote
        func number<T>(_ value: T?) -> String { value.map { "\($0)" } ?? "null" }
        let rows = series.map { s in
            "{\"table\":\(q(s.table)),\"symbol\":\(q(s.symbol)),\"first\":\(q(UTCCalendar.iso8601(s.first))),"
                + "\"last\":\(q(UTCCalendar.iso8601(s.last))),\"rows\":\(s.rows),\"expected\":\(number(s.expected)),"
                + "\"missing\":\(number(s.missing)),\"holes\":\(number(s.holes)),\"confirmed_outages\":\(s.confirmedOutages),"
                + "\"confirmed_missing\":\(s.confirmedMissing),\"behind\":\(number(s.behind)),\"complete\":\(number(s.complete)),"
                + "\"from_files\":\(number(s.fromFiles)),\"from_rest\":\(number(s.fromREST)),\"from_rest_for_file_holes\":\(number(s.fromRESTForFileHoles))}"
        }
        let tables = Set(series.map(\.table)).count
        return "{\"coverage\":{\"tables\":\(tables),\"series\":\(series.count),\"complete\":\(complete),\"incomplete\":\(incomplete),"
            + "\"notes\":[\(notes.map(q).joined(separator: ","))]},\"series\":[\(rows.joined(separator: ","))]}\n"
    }

    func table() -> String {
        guard !series.isEmpty || !notes.isEmpty else { return "nothing stored in the tables asked for\n" }
        let header = ["table", "symbol", "first (UTC)", "last (UTC)", "rows", "expected", "missing", "holes", "outages", "behind", "files", "REST"]
        var lines = [header]
        for s in series {
            lines.append([s.table, s.symbol, UTCCalendar.iso8601(s.first), UTCCalendar.iso8601(s.last), "\(s.rows)",
                          s.expected.map(String.init) ?? "-", s.missing.map(String.init) ?? "-", s.holes.map(String.init) ?? "-",
                          s.confirmedOutages == 0 ? "0" : "\(s.confirmedOutages) (\(s.confirmedMissing))", s.behind.map(String.init) ?? "-",
                          s.fromFiles.map(String.init) ?? "-", s.fromREST.map(String.init) ?? "-"])
        }
        let widths = header.indices.map { c in lines.map { $0[c].count }.max() ?? 0 }
        var out = lines.map { row in
            String(row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .reversed().drop { $0 == " " }.reversed())
        }
        out.insert(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "), at: 1)
        var text = out.joined(separator: "\n") + "\n"
        let missing = series.compactMap { s in s.missing.map { $0 - s.confirmedMissing } }.filter { $0 > 0 }.reduce(0, +)
        let unknown = series.count - complete - incomplete
        text += "\(series.count) series in \(Set(series.map(\.table)).count) tables: \(complete) complete, \(incomplete) lacking rows"
            + (unknown > 0 ? ", \(unknown) without a fixed cadence (funding)" : "") + "\n"
        if missing > 0 {
            text += "\(missing) rows Binance has are missing: `binance-extractor gaps` fills kline holes, `trades --start ... --end ...` a range of trades\n"
        }
        for note in notes { text += "note: \(note)\n" }
        return text
    }
}

