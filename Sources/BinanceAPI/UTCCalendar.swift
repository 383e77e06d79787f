/// Calendar arithmetic in UTC on Unix milliseconds, without Foundation's time zones.
public enum UTCCalendar {
    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// (year, month, day) of a day count since 1970-01-01.
    public static func civil(days z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    static let dayMs: Int64 = 86_400_000

    public static func startOfMonth(containing ms: Int64) -> Int64 {
        let (y, m, _) = civil(days: Int64.floorDiv(ms, dayMs))
        return days(year: y, month: m, day: 1) * dayMs
    }

    public static func startOfNextMonth(after ms: Int64) -> Int64 {
        let (y, m, _) = civil(days: Int64.floorDiv(ms, dayMs))
        return m == 12 ? days(year: y + 1, month: 1, day: 1) * dayMs : days(year: y, month: m + 1, day: 1) * dayMs
    }

    /// Formats as `2024-01-31T23:59:00.000Z`.
    public static func iso8601(_ ms: Int64) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendISO8601(ms, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `2024-01-31T23:59:00.000Z` to `out` without an intermediate string (bulk writers format millions).
    /// Years outside 0...9999 are written with as many digits as they have.
    public static func appendISO8601(_ ms: Int64, into out: inout [UInt8]) {
        let day = Int64.floorDiv(ms, dayMs)
        let (y, m, d) = civil(days: day)
        let rest = ms - day * dayMs
        func digits(_ value: Int64, _ width: Int) {
            var v = value
            if v < 0 {
                out.append(UInt8(ascii: "-"))
                v = -v
            }
            var buffer: [UInt8] = []
            repeat {
                buffer.append(UInt8(truncatingIfNeeded: 0x30 + v % 10))
                v /= 10
            } while v > 0
            for _ in buffer.count..<max(width, buffer.count) { out.append(0x30) }
            out.append(contentsOf: buffer.reversed())
        }
        func two(_ v: Int64) {
            out.append(UInt8(truncatingIfNeeded: 0x30 + v / 10))
            out.append(UInt8(truncatingIfNeeded: 0x30 + v % 10))
        }
        if (0...9999).contains(y) {
            two(y / 100)
            two(y % 100)
        } else {
            digits(y, 4)
        }
        out.append(UInt8(ascii: "-")); two(m)
        out.append(UInt8(ascii: "-")); two(d)
        out.append(UInt8(ascii: "T")); two(rest / 3_600_000)
        out.append(UInt8(ascii: ":")); two(rest / 60_000 % 60)
        out.append(UInt8(ascii: ":")); two(rest / 1000 % 60)
        let milli = rest % 1000
        out.append(UInt8(ascii: "."))
        out.append(UInt8(truncatingIfNeeded: 0x30 + milli / 100)); two(milli % 100)
        out.append(UInt8(ascii: "Z"))
    }

    /// Unix times below this are seconds, at or above it milliseconds: 10^11 seconds is the year 5138, 10^11
    /// milliseconds is March 1973, before any market Binance serves; so every plausible time reads one way only.
    public static let epochSecondsBelow: Int64 = 100_000_000_000

    /// Parses a time given by a person or by this program's own output, all in UTC unless an offset says otherwise:
    /// - `2024-01-01`, `2024-01-01T12:30`, `2024-01-01T12:30:00`, `2024-01-01 12:30:00`;
    /// - ISO 8601 / RFC 3339 with fractions of a second and an offset: `2024-01-01T00:00:00.000Z`,
    ///   `2024-01-01T01:00:00+01:00`, `...-0500`, `...+05` (fractions beyond milliseconds are floored);
    /// - a Unix time of at least nine digits, in seconds or milliseconds by its magnitude (`epochSecondsBelow`):
    ///   `1704067200` and `1704067200000` are the same instant.
    /// Returns nil for anything else.
    ///
    /// Only ASCII digits count as digits: `Character.isNumber` also accepts `½` and Arabic-Indic digits, which
    /// `Int64(_:)` then refuses.
    public static func parse(_ text: String) -> Int64? {
        func digits<S: StringProtocol>(_ s: S) -> Bool { !s.isEmpty && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        if digits(text) {
            guard text.utf8.count >= 9, let n = Int64(text) else { return nil }
            return n < epochSecondsBelow ? n * 1000 : n
        }
        let parts = text.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: { $0 == "T" || $0 == "t" || $0 == " " })
        // A date alone may carry a `Z` (UTC), nothing else.
        let datePart = parts.count == 1 && (text.hasSuffix("Z") || text.hasSuffix("z")) ? parts[0].dropLast() : parts[0]
        let date = datePart.split(separator: "-", omittingEmptySubsequences: false)
        guard date.count == 3, date[0].count == 4, date[1].count == 2, date[2].count == 2, date.allSatisfy(digits),
              let y = Int64(date[0]), let m = Int64(date[1]), let d = Int64(date[2]),
              (1...12).contains(m), d >= 1 else { return nil }
        let monthStart = days(year: y, month: m, day: 1)
        let nextMonth = m == 12 ? days(year: y + 1, month: 1, day: 1) : days(year: y, month: m + 1, day: 1)
        guard d <= nextMonth - monthStart else { return nil }
        var ms = days(year: y, month: m, day: d) * dayMs
        guard parts.count == 2 else { return ms }
        guard let (clock, offset) = splitOffset(parts[1]) else { return nil }
        let time = clock.split(separator: ":", omittingEmptySubsequences: false)
        guard time.count == 2 || time.count == 3 else { return nil }
        var seconds = time.count == 3 ? time[2] : "00"
        var fraction: Substring = ""
        if let dot = seconds.firstIndex(where: { $0 == "." || $0 == "," }) {
            fraction = seconds[seconds.index(after: dot)...]
            seconds = seconds[..<dot]
            guard time.count == 3, digits(fraction), fraction.count <= 9 else { return nil }
        }
        guard time[0].count == 2, time[1].count == 2, seconds.count == 2, digits(time[0]), digits(time[1]), digits(seconds),
              let h = Int64(time[0]), let mi = Int64(time[1]), let s = Int64(seconds), h < 24, mi < 60, s < 60 else { return nil }
        let milli = fraction.isEmpty ? 0 : Int64(String((fraction + "00").prefix(3))) ?? 0
        ms += h * 3_600_000 + mi * 60_000 + s * 1000 + milli - offset
        return ms
    }

    /// `12:30:00.5+01:00` -> (`12:30:00.5`, 3,600,000): the time and its offset from UTC in milliseconds (`Z`, `z` or
    /// none: 0). Offsets are `±HH:MM`, `±HHMM` or `±HH`, at most 18 hours (ISO 8601's range as java.time takes it).
    static func splitOffset(_ text: Substring) -> (Substring, Int64)? {
        if text.hasSuffix("Z") || text.hasSuffix("z") { return (text.dropLast(), 0) }
        guard let sign = text.lastIndex(where: { $0 == "+" || $0 == "-" }) else { return (text, 0) }
        let given = Array(text[text.index(after: sign)...].utf8)
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        let hhmm: [UInt8]
        switch given.count {
        case 2, 4: hhmm = given
        case 5 where given[2] == UInt8(ascii: ":"): hhmm = Array(given[0..<2] + given[3..<5])
        default: return nil
        }
        guard hhmm.allSatisfy(isDigit) else { return nil }
        let h = Int64(hhmm[0] - 0x30) * 10 + Int64(hhmm[1] - 0x30)
        let m = hhmm.count == 4 ? Int64(hhmm[2] - 0x30) * 10 + Int64(hhmm[3] - 0x30) : 0
        guard m < 60, h * 60 + m <= 18 * 60 else { return nil }
        let ms = (h * 60 + m) * 60_000
        return (text[..<sign], text[sign] == "-" ? -ms : ms)
    }
}
