/// A non-negative decimal number exactly as Binance sent it ("0.01634790", "148976.11427815").
///
/// Prices and quantities never pass through `Double`: the text is validated once and stored as is in a DECIMAL
/// column, which holds `integerDigits` digits before the point and `fractionDigits` after it.
public struct DecimalString: Sendable, Hashable, CustomStringConvertible {
    /// The digits, with at most one '.'.
    public let text: String

    /// Digits the storage columns hold before the decimal point (DECIMAL(38,18): 20) and after it (18).
    public static let integerDigits = 20
    public static let fractionDigits = 18

    /// Validates a non-negative decimal, or with `signed`, one that may start with '-' (funding rates).
    public init(validating text: String, signed: Bool = false) throws(DecimalStringError) {
        var integer = 0, fraction = 0, seenPoint = false
        let digits = signed && text.hasPrefix("-") ? Substring(text.dropFirst()) : Substring(text)
        for byte in digits.utf8 {
            if byte == 46 {  // "."
                if seenPoint { throw DecimalStringError(text: text, reason: "more than one decimal point") }
                seenPoint = true
            } else if byte >= 48 && byte <= 57 {
                if seenPoint { fraction += 1 } else { integer += 1 }
            } else {
                throw DecimalStringError(text: text, reason: signed ? "not a decimal number" : "not a non-negative decimal number")
            }
        }
        guard integer > 0, !seenPoint || fraction > 0 else {
            throw DecimalStringError(text: text, reason: signed ? "not a decimal number" : "not a non-negative decimal number")
        }
        // Leading zeros do not count against the column's integer digits.
        let significant = digits.utf8.prefix(integer).drop(while: { $0 == 48 }).count
        guard significant <= Self.integerDigits else {
            throw DecimalStringError(text: text, reason: "more than \(Self.integerDigits) digits before the point")
        }
        guard fraction <= Self.fractionDigits else {
            throw DecimalStringError(text: text, reason: "more than \(Self.fractionDigits) digits after the point; it would be rounded")
        }
        self.text = text
    }

    /// Trusted construction for values this project formats itself (tests, the simulator).
    public init(unchecked text: String) { self.text = text }

    public static let zero = DecimalString(unchecked: "0")

    public var description: String { text }

    /// Compares two decimal strings by value, exactly, without allocating.
    public static func compare(_ a: DecimalString, _ b: DecimalString) -> Int {
        var x = a.text, y = b.text
        return x.withUTF8 { xa in y.withUTF8 { yb in compareDigits(xa, yb) } }
    }

    /// Compares two decimal strings that may carry a leading '-' (premium index values, funding rates) by value,
    /// exactly; `-0` equals `0`.
    public static func compareSigned(_ a: DecimalString, _ b: DecimalString) -> Int {
        let aNegative = a.text.hasPrefix("-"), bNegative = b.text.hasPrefix("-")
        let x = aNegative ? DecimalString(unchecked: String(a.text.dropFirst())) : a
        let y = bNegative ? DecimalString(unchecked: String(b.text.dropFirst())) : b
        let xZero = compare(x, zero) == 0, yZero = compare(y, zero) == 0
        let xSign = xZero ? 0 : aNegative ? -1 : 1, ySign = yZero ? 0 : bNegative ? -1 : 1
        if xSign != ySign { return xSign < ySign ? -1 : 1 }
        let magnitude = compare(x, y)
        return xSign < 0 ? -magnitude : magnitude
    }

    /// Integer part without leading zeros (start, end) and fraction (start, end) of ASCII decimal digits.
    private static func parts(_ p: UnsafeBufferPointer<UInt8>) -> (Int, Int, Int, Int) {
        var i = 0
        while i < p.count, p[i] == 48 { i += 1 }
        var point = i
        while point < p.count, p[point] != 46 { point += 1 }
        let fraction = point < p.count ? point + 1 : p.count
        return (min(i, point), point, fraction, p.count)
    }

    private static func compareDigits(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
        let (ai, ae, af, afe) = parts(a), (bi, be, bf, bfe) = parts(b)
        let alen = ae - ai, blen = be - bi
        if alen != blen { return alen < blen ? -1 : 1 }
        for k in 0..<alen where a[ai + k] != b[bi + k] { return a[ai + k] < b[bi + k] ? -1 : 1 }
        let n = max(afe - af, bfe - bf)
        for k in 0..<n {
            let x = af + k < afe ? a[af + k] : 48
            let y = bf + k < bfe ? b[bf + k] : 48
            if x != y { return x < y ? -1 : 1 }
        }
        return 0
    }
}

/// A value that cannot be stored exactly.
public struct DecimalStringError: Error, CustomStringConvertible, Equatable {
    public let text: String
    public let reason: String
    public var description: String { "'\(text)' is \(reason)" }
}
