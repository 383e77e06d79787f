/// A Binance kline interval ("1m", "1h", "1M", ...).
///
/// Supported intervals are case-sensitive: 1s (spot only), 1m 3m 5m 15m 30m, 1h 2h 4h 6h 8h 12h, 1d 3d, 1w, 1M
/// (Binance API documentation, "Kline/Candlestick chart intervals").
public enum KlineInterval: String, Sendable, CaseIterable, Codable, Comparable {
    case s1 = "1s"
    case m1 = "1m", m3 = "3m", m5 = "5m", m15 = "15m", m30 = "30m"
    case h1 = "1h", h2 = "2h", h4 = "4h", h6 = "6h", h8 = "8h", h12 = "12h"
    case d1 = "1d", d3 = "3d"
    case w1 = "1w"
    case mo1 = "1M"

    /// Parses a Binance interval name, exactly as Binance spells it.
    public init?(binanceName: String) {
        self.init(rawValue: binanceName)
    }

    /// The interval's length in milliseconds, or nil for the calendar month, whose length varies.
    public var fixedMilliseconds: Int64? {
        switch self {
        case .s1: 1_000
        case .m1: 60_000
        case .m3: 180_000
        case .m5: 300_000
        case .m15: 900_000
        case .m30: 1_800_000
        case .h1: 3_600_000
        case .h2: 7_200_000
        case .h4: 14_400_000
        case .h6: 21_600_000
        case .h8: 28_800_000
        case .h12: 43_200_000
        case .d1: 86_400_000
        case .d3: 259_200_000
        case .w1: 604_800_000
        case .mo1: nil
        }
    }

    /// A length to plan with (a month counts as 31 days, its longest).
    public var nominalMilliseconds: Int64 { fixedMilliseconds ?? 31 * 86_400_000 }

    /// Open time of the candle that follows the one opening at `openTime`.
    public func nextOpenTime(after openTime: Int64) -> Int64 {
        if let ms = fixedMilliseconds { return openTime + ms }
        return UTCCalendar.startOfNextMonth(after: openTime)
    }

    /// Open time of the candle containing `time` (candles are aligned to the Unix epoch, weeks to Monday,
    /// months to the first day of the month, all in UTC).
    public func openTime(containing time: Int64) -> Int64 {
        switch self {
        case .mo1:
            return UTCCalendar.startOfMonth(containing: time)
        case .w1:
            // 1970-01-01 was a Thursday; Binance weeks open on Monday 00:00 UTC (epoch + 4 days).
            let offset: Int64 = 4 * 86_400_000
            let w = fixedMilliseconds!
            return Int64.floorDiv(time - offset, w) * w + offset
        default:
            let w = fixedMilliseconds!
            return Int64.floorDiv(time, w) * w
        }
    }

    /// Open time of the first candle opening at or after `time`: `time` itself on a boundary, else the next one
    /// (calendar months, and weeks from Monday 00:00 UTC, as Binance counts them).
    public func firstOpenTime(atOrAfter time: Int64) -> Int64 {
        let open = openTime(containing: time)
        return open == time ? open : nextOpenTime(after: open)
    }

    /// How many candles open in `[from, to]` (both candle open times): calendar months are counted one by one.
    public func count(from: Int64, to: Int64) -> Int64 {
        guard to >= from else { return 0 }
        if let ms = fixedMilliseconds { return (to - from) / ms + 1 }
        var n: Int64 = 0, t = from
        while t <= to { n += 1; t = nextOpenTime(after: t) }
        return n
    }

    /// Close time of the candle opening at `openTime`: the next open time minus 1 ms.
    public func closeTime(forOpenTime openTime: Int64) -> Int64 {
        nextOpenTime(after: openTime) - 1
    }

    /// Whether the market offers this interval (1s is spot only).
    public func isAvailable(on market: Market) -> Bool {
        self != .s1 || market == .spot
    }

    /// Suffix of the table holding this interval: `m1`, `m15`, `h1`, `d1`, `w1`, `s1`, and `mo1` for the month
    /// (MariaDB table names are case-sensitive only on some file systems, so "M1" and "m1" must not be told apart
    /// by case alone).
    public var tableSuffix: String {
        switch self {
        case .mo1: return "mo1"
        default:
            let name = rawValue
            let unit = name.last!
            return "\(unit)\(name.dropLast())"
        }
    }

    public static func < (lhs: KlineInterval, rhs: KlineInterval) -> Bool {
        lhs.nominalMilliseconds < rhs.nominalMilliseconds
    }

    /// Every interval name, for messages.
    public static var allNames: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

extension Int64 {
    /// Division rounding toward negative infinity.
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
