import BinanceAPI
import BinanceArchive
import Clocks
import Foundation
import HTTPTransport
import Logging

/// Where `klines` reads history from (`--source`, `BINANCE_KLINES_SOURCE`).
public enum SourceMode: String, Sendable, CaseIterable {
    /// Whole closed months from monthly files, whole closed days from daily files, the rest (and whatever a file
    /// lacks) from REST.
    case auto
    /// REST only.
    case rest
    /// Files only; what they lack is reported, not fetched.
    case archive
}

/// One piece of a unit's range: a file of the archives, or a range for REST.
public enum ArchiveSegment: Sendable, Equatable {
    case file(ArchiveFile)
    /// Open times `[start, end]`.
    case rest(start: Int64, end: Int64)
}

/// Splits `[start, end]` (open times) into whole closed months (monthly files), whole closed days (daily files)
/// and the rest (REST). Pure. Files exist for intervals up to a day; longer candles always come from REST (a
/// year of weekly candles is one request). A day counts as closed once it has ended; whether its file is
/// published yet is the archive's answer (404), not a guess.
public enum ArchivePlanner {
    public static func segments(market: Market, symbol: Symbol, interval: KlineInterval, series: PriceSeries = .trade, start: Int64, end: Int64,
                                now: Int64) -> [ArchiveSegment] {
        guard end >= start else { return [] }
        guard let length = interval.fixedMilliseconds, length <= 86_400_000 else { return [.rest(start: start, end: end)] }
        return segments(market: market, symbol: symbol, dataset: .candles(interval, series: series), step: length, start: start, end: end, now: now)
    }

    /// The same for any dataset whose rows have a time: `step` is the distance between two rows' times (a kline's
    /// interval; 1 ms for trades).
    /// `monthly: false` for datasets published as daily files only (metrics).
    public static func segments(market: Market, symbol: Symbol, dataset: ArchiveFile.Dataset, step length: Int64, start: Int64, end: Int64,
                                now: Int64, monthly: Bool = true) -> [ArchiveSegment] {
        guard end >= start, length > 0 else { return [] }
        let today = Int64.floorDivide(now, 86_400_000) * 86_400_000
        var out: [ArchiveSegment] = []
        var cursor = start
        func flushREST(until next: Int64) {
            if next > cursor { out.append(.rest(start: cursor, end: next - length)) }
        }
        var day = Int64.floorDivide(start + 86_400_000 - 1, 86_400_000) * 86_400_000  // first whole day at or after start
        while day + 86_400_000 <= min(end + length, today) {
            let monthStart = UTCCalendar.startOfMonth(containing: day)
            let monthEnd = UTCCalendar.startOfNextMonth(after: day)
            let (y, m, d) = UTCCalendar.civil(day)
            if monthly, day == monthStart, monthEnd <= min(end + length, today) {
                flushREST(until: day)
                out.append(.file(ArchiveFile(market: market, dataset: dataset, symbol: symbol, period: .month(year: y, month: m))))
                cursor = monthEnd
                day = monthEnd
                continue
            }
            flushREST(until: day)
            out.append(.file(ArchiveFile(market: market, dataset: dataset, symbol: symbol, period: .day(year: y, month: m, day: d))))
            cursor = day + 86_400_000
            day += 86_400_000
        }
        if cursor <= end { out.append(.rest(start: cursor, end: end)) }
        return out
    }

    /// A monthly file's daily files, for a month whose monthly file is not there yet.
    public static func days(of file: ArchiveFile) -> [ArchiveFile] {
        guard case .month = file.period else { return [] }
        return stride(from: file.range.lowerBound, to: file.range.upperBound, by: 86_400_000).map { day in
            let (y, m, d) = UTCCalendar.civil(day)
            return ArchiveFile(market: file.market, dataset: file.dataset, symbol: file.symbol, period: .day(year: y, month: m, day: d))
        }
    }
}

extension ArchivePlanner {
    /// A dry run's plan, for any dataset: each file of `segments` asked for its size (HEAD, no download) and listed, a
    /// month whose monthly file is not out yet as its daily files, and what is left to REST, within `range` (times
    /// `[from, to]`, `step` apart; ranges that touch are joined).
    static func list(_ segments: [ArchiveSegment], archive: any ArchiveSource, step: Int64, within range: ClosedRange<Int64>,
                     outcome: inout UnitOutcome) async {
        func rest(_ start: Int64, _ end: Int64) {
            let from = max(start, range.lowerBound), to = min(end, range.upperBound)
            if to >= from { outcome.addRESTRange(from: from, to: to, step: step) }
        }
        var queue = segments[...]
        var pending: [ArchiveSegment] = []
        while let segment = pending.isEmpty ? queue.popFirst() : pending.removeFirst() {
            switch segment {
            case .rest(let start, let end): rest(start, end)
            case .file(let file):
                switch await archive.size(of: file) {
                case .bytes(let size): outcome.plannedFiles.append(PlannedFile(name: file.fileName, path: file.path, bytes: size))
                case .absent where days(of: file).count > 0: pending = days(of: file).map { .file($0) } + pending
                case .absent: rest(file.range.lowerBound, file.range.upperBound - step)
                case .unreachable:
                    outcome.archiveUnreachable = true
                    rest(file.range.lowerBound, file.range.upperBound - step)
                }
            }
        }
    }
}

extension Int64 {
    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
}

extension UTCCalendar {
    /// Year, month and day of the UTC day holding `ms`.
    static func civil(_ ms: Int64) -> (Int, Int, Int) {
        let c = civil(days: Int64.floorDivide(ms, 86_400_000))
        return (Int(c.year), Int(c.month), Int(c.day))
    }
}

