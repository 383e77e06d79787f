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
