/// A Binance symbol such as `BTCUSDT`, checked against Binance's pattern before it reaches a URL or SQL.
public struct Symbol: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public let name: String

    /// Binance validates the `symbol` parameter with `^[A-Z0-9-_.]{1,20}$`
    /// (Binance API documentation, "Error codes": -1100 ILLEGAL_CHARS / parameter rules for `symbol`).
    public init(validating raw: String) throws(SymbolError) {
        guard (1...20).contains(raw.utf8.count),
              raw.utf8.allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 || $0 == 46 })
        else { throw SymbolError(raw: raw) }
        name = raw
    }

    public var description: String { name }

    /// A delivery contract's delivery: futures named `PAIR_YYMMDD` (`BTCUSD_240628`, `BTCUSDT_250926`) deliver at
    /// 08:00 UTC on that day (Binance, "Delivery Futures"), and have no candles after it; nil for any other name
    /// (perpetuals, `BTCUSD_PERP`; spot pairs).
    public var deliveryTime: Int64? {
        guard let underscore = name.lastIndex(of: "_") else { return nil }
        let date = name[name.index(after: underscore)...]
        guard date.count == 6, date.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int64(date) else { return nil }
        let (year, month, day) = (2000 + n / 10_000, n / 100 % 100, n % 100)
        guard (1...12).contains(month), (1...31).contains(day) else { return nil }
        let days = UTCCalendar.days(year: year, month: month, day: day)
        guard UTCCalendar.civil(days: days) == (year, month, day) else { return nil }
        return days * 86_400_000 + 8 * 3_600_000
    }

    /// A perpetual of COIN-M (`BTCUSD_PERP`): the only contracts with funding there.
    public var isPerpetual: Bool { !name.contains("_") || name.hasSuffix("_PERP") }

    public static func < (a: Symbol, b: Symbol) -> Bool { a.name < b.name }

    /// Parses a comma-separated list (`BTCUSDT,ETHUSDT`), trimming spaces and dropping repeats, keeping order.
    public static func parseList(_ text: String) throws(SymbolError) -> [Symbol] {
        var seen = Set<Symbol>(), out: [Symbol] = []
        for part in text.split(separator: ",") {
            let trimmed = part.trimmingSpaces
            if trimmed.isEmpty { continue }
            let symbol = try Symbol(validating: trimmed)
            if seen.insert(symbol).inserted { out.append(symbol) }
        }
        return out
    }
}

/// Binance's quarterly delivery contracts deliver at 08:00 UTC on the last Friday of March, June, September and
/// December (Binance, "Delivery Futures"; their names, `PAIR_YYMMDD`, carry that day).
public enum QuarterlyDelivery {
    /// Every quarterly delivery of the years `years`, in order.
    public static func deliveries(years: ClosedRange<Int64>) -> [Int64] {
        years.flatMap { year in
            [3, 6, 9, 12].map { (month: Int64) -> Int64 in
                let next = month == 12 ? UTCCalendar.days(year: year + 1, month: 1, day: 1) : UTCCalendar.days(year: year, month: month + 1, day: 1)
                var day = next - 1
                while (day + 4) % 7 != 5 { day -= 1 }  // 1970-01-01 was a Thursday (4); Friday is 5
                return day * 86_400_000 + 8 * 3_600_000
            }
        }
    }

    /// The deliveries around `now`: the last one at or before it, and the two after it.
    public static func around(_ now: Int64) -> (last: Int64, current: Int64, next: Int64)? {
        let year = UTCCalendar.civil(days: now / 86_400_000).year
        let all = deliveries(years: (year - 1)...(year + 1))
        guard let current = all.firstIndex(where: { $0 > now }), current > 0, current + 1 < all.count else { return nil }
        return (all[current - 1], all[current], all[current + 1])
    }

    /// The contract of `pair` delivering at `delivery`: `BTCUSD_240329`.
    public static func symbol(pair: String, delivery: Int64) -> String {
        let (y, m, d) = UTCCalendar.civil(days: delivery / 86_400_000)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return pair + "_" + two(y % 100) + two(m) + two(d)
    }
}

/// A symbol that does not match Binance's pattern.
public struct SymbolError: Error, CustomStringConvertible, Equatable {
    public let raw: String
    public var description: String {
        "invalid symbol '\(raw)': Binance symbols are 1 to 20 characters of A-Z, 0-9, '-', '_' or '.' "
            + "(upper case, e.g. BTCUSDT); fix --symbols or DEFAULT_SYMBOLS"
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and line breaks.
    var trimmingSpaces: String {
        let space: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        var s = Substring(self)
        while let f = s.first, space(f) { s.removeFirst() }
        while let l = s.last, space(l) { s.removeLast() }
        return String(s)
    }
}
