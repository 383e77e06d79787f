/// Parses a klines response body (`[[openTime,"open","high","low","close","volume",closeTime,"quoteVolume",
/// trades,"takerBuyBase","takerBuyQuote","ignore"], ...]`) straight from bytes.
///
/// A hand-written scanner: the shape is fixed, and a general JSON decoder would turn every value into a
/// Foundation object (and numbers into `Double`) first. Every decimal is validated as it is read.
public struct KlinePageParser: Sendable {
    public init() {}

    public func parse(_ body: [UInt8]) throws(KlineParseError) -> [Kline] {
        try body.withUnsafeBufferPointer { (buffer) throws(KlineParseError) -> [Kline] in
            var scanner = Scanner(bytes: buffer)
            return try scanner.page()
        }
    }

    /// A page of a computed price series (`[[openTime,"open","high","low","close","ignore",closeTime,"ignore",count,
    /// "ignore","ignore","ignore"], ...]`). The ignored fields are skipped unread (Binance's own example has `"0 "`
    /// there); premium index values may be negative.
    public func parsePrices(_ body: [UInt8], series: PriceSeries) throws(KlineParseError) -> [PriceKline] {
        try body.withUnsafeBufferPointer { (buffer) throws(KlineParseError) -> [PriceKline] in
            var scanner = Scanner(bytes: buffer)
            return try scanner.list("klines") { (scanner: inout Scanner) throws(KlineParseError) in try scanner.priceKline(signed: series.allowsNegativeValues) }
        }
    }
}

/// A body that is not a well-formed klines page.
public struct KlineParseError: Error, CustomStringConvertible, Equatable {
    public let offset: Int
    public let reason: String
    public var description: String { "malformed klines response at byte \(offset): \(reason)" }
}

private struct Scanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func fail(_ reason: String) -> KlineParseError { KlineParseError(offset: i, reason: reason) }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 32 || bytes[i] == 10 || bytes[i] == 13 || bytes[i] == 9 { i += 1 }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(KlineParseError) {
        skipSpace()
        guard i < bytes.count, bytes[i] == byte else {
            throw fail(i < bytes.count ? "expected \(what)" : "body ends early, expected \(what)")
        }
        i += 1
    }

    /// Consumes `byte` if it is next.
    mutating func accept(_ byte: UInt8) -> Bool {
        skipSpace()
        if i < bytes.count, bytes[i] == byte { i += 1; return true }
        return false
    }

    mutating func page() throws(KlineParseError) -> [Kline] {
        try list("klines") { (scanner: inout Scanner) throws(KlineParseError) in try scanner.kline() }
    }

    /// A JSON list of rows, each read by `row`, and nothing after it.
    mutating func list<Row>(_ what: String, _ row: (inout Scanner) throws(KlineParseError) -> Row) throws(KlineParseError) -> [Row] {
        try expect(91, "'[' opening the list of \(what)")
        var out: [Row] = []
        out.reserveCapacity(bytes.count / 160)
        if !accept(93) {
            repeat { out.append(try row(&self)) } while accept(44)
            try expect(93, "',' or ']' after a kline")
        }
        skipSpace()
        guard i == bytes.count else { throw fail("unexpected data after the list of \(what)") }
        return out
    }

    mutating func priceKline(signed: Bool) throws(KlineParseError) -> PriceKline {
        try expect(91, "'[' opening a kline")
        let openTime = try integer("open time"); try expect(44, "','")
        let open = try decimal("open", signed: signed); try expect(44, "','")
        let high = try decimal("high", signed: signed); try expect(44, "','")
        let low = try decimal("low", signed: signed); try expect(44, "','")
        let close = try decimal("close", signed: signed); try expect(44, "','")
        try skipValue(); try expect(44, "','")  // ignore
        let closeTime = try integer("close time"); try expect(44, "','")
        try skipValue(); try expect(44, "','")  // ignore
        let count = try integer("count of basic data")
        while accept(44) { try skipValue() }  // ignore, and whatever Binance may add
        try expect(93, "']' closing a kline")
        return PriceKline(openTime: openTime, open: open, high: high, low: low, close: close, closeTime: closeTime, basicDataCount: count)
    }

    mutating func kline() throws(KlineParseError) -> Kline {
        try expect(91, "'[' opening a kline")
        let openTime = try integer("open time")
        try expect(44, "','")
        let open = try decimal("open price"); try expect(44, "','")
        let high = try decimal("high price"); try expect(44, "','")
        let low = try decimal("low price"); try expect(44, "','")
        let close = try decimal("close price"); try expect(44, "','")
        let volume = try decimal("volume"); try expect(44, "','")
        let closeTime = try integer("close time"); try expect(44, "','")
        let quote = try decimal("quote asset volume"); try expect(44, "','")
        let trades = try integer("number of trades"); try expect(44, "','")
        let takerBase = try decimal("taker buy base asset volume"); try expect(44, "','")
        let takerQuote = try decimal("taker buy quote asset volume")
        // Binance appends an "unused field, ignore" and may add more fields in the future: skip them.
        while accept(44) { try skipValue() }
        try expect(93, "']' closing a kline")
        return Kline(openTime: openTime, open: open, high: high, low: low, close: close, volume: volume,
                     closeTime: closeTime, quoteAssetVolume: quote, numberOfTrades: trades,
                     takerBuyBaseAssetVolume: takerBase, takerBuyQuoteAssetVolume: takerQuote)
    }

    mutating func integer(_ what: String) throws(KlineParseError) -> Int64 {
        skipSpace()
        var value: Int64 = 0, digits = 0
        let negative = i < bytes.count && bytes[i] == 45
        if negative { i += 1 }
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(bytes[i] - 48))
            if o1 || o2 { throw fail("\(what) does not fit in 64 bits") }
            value = a; digits += 1; i += 1
        }
        guard digits > 0 else { throw fail("expected an integer \(what)") }
        return negative ? -value : value
    }

    mutating func rawString(_ what: String) throws(KlineParseError) -> String {
        try expect(34, "a string \(what)")
        let start = i
        while i < bytes.count, bytes[i] != 34 {
            if bytes[i] == 92 { throw fail("unexpected escape in \(what)") }
            i += 1
        }
        guard i < bytes.count else { throw fail("body ends inside \(what)") }
        let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        i += 1
        return s
    }

    mutating func decimal(_ what: String, signed: Bool = false) throws(KlineParseError) -> DecimalString {
        let start = i
        let text = try rawString(what)
        do {
            return try DecimalString(validating: text, signed: signed)
        } catch {
            throw KlineParseError(offset: start, reason: "\(what) \(error)")
        }
    }

    /// Skips one JSON scalar (string, number, true/false/null) of a trailing field.
    mutating func skipValue() throws(KlineParseError) {
        skipSpace()
        guard i < bytes.count else { throw fail("body ends early") }
        if bytes[i] == 34 { _ = try rawString("trailing field"); return }
        let start = i
        while i < bytes.count, bytes[i] != 44, bytes[i] != 93, bytes[i] != 32 { i += 1 }
        if i == start { throw fail("expected a value") }
    }
}
