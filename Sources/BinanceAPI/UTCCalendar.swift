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
        let day = Int64.floorDiv(ms, dayMs)
        let (y, m, d) = civil(days: day)
        let rest = ms - day * dayMs
        let h = rest / 3_600_000, mi = rest / 60_000 % 60, s = rest / 1000 % 60, milli = rest % 1000
        func pad(_ v: Int64, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(h, 2)):\(pad(mi, 2)):\(pad(s, 2)).\(pad(milli, 3))Z"
    }

    /// Parses `2024-01-01`, `2024-01-01T12:30`, `2024-01-01T12:30:00`, `2024-01-01 12:30:00`, with an optional
    /// `Z`, or a Unix time in milliseconds. All times are UTC. Returns nil for anything else.
    ///
    /// Only ASCII digits count as digits: `Character.isNumber` also accepts `½` and Arabic-Indic digits, which
    /// `Int64(_:)` then refuses.
    public static func parse(_ text: String) -> Int64? {
        let t = text.hasSuffix("Z") ? String(text.dropLast()) : text
        func digits<S: StringProtocol>(_ s: S) -> Bool { !s.isEmpty && s.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        if digits(t), t.count >= 10 { return Int64(t) }
        let parts = t.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "T" || $0 == " " })
        guard parts.count == 1 || parts.count == 2 else { return nil }
        let date = parts[0].split(separator: "-", omittingEmptySubsequences: false)
        guard date.count == 3, date[0].count == 4, date[1].count == 2, date[2].count == 2, date.allSatisfy(digits),
              let y = Int64(date[0]), let m = Int64(date[1]), let d = Int64(date[2]),
              (1...12).contains(m), d >= 1 else { return nil }
        let monthStart = days(year: y, month: m, day: 1)
        let nextMonth = m == 12 ? days(year: y + 1, month: 1, day: 1) : days(year: y, month: m + 1, day: 1)
        guard d <= nextMonth - monthStart else { return nil }
        var ms = days(year: y, month: m, day: d) * dayMs
        if parts.count == 2 {
            let time = parts[1].split(separator: ":", omittingEmptySubsequences: false)
            guard time.count == 2 || time.count == 3, time.allSatisfy({ $0.count == 2 && digits($0) }),
                  let h = Int64(time[0]), let mi = Int64(time[1]), h < 24, mi < 60,
                  let s = time.count == 3 ? Int64(time[2]) : 0, s < 60 else { return nil }
            ms += h * 3_600_000 + mi * 60_000 + s * 1000
        }
        return ms
    }
}
