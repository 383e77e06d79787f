import BinanceAPI

/// The CSV inside an archive file, read as Binance publishes it (see ARCHIVE-QUIRKS in the project's notes, and
/// binance-public-data's README and issues):
/// - a header row in USD-M futures files since 2022 (#246, #177), none in spot files and older futures files: each
///   file is looked at, nothing assumed;
/// - spot files for periods from 2025-01-01 carry microseconds (#386): times become the milliseconds REST serves
///   (a close time `…999999` µs is `…999` ms);
/// - rows out of order or repeated under a matching CHECKSUM (#339, #191, #203): sorted and de-duplicated by key;
///   two different rows with one key make the file unusable.
/// Every value goes through the same `DecimalString` check as a REST answer, so a row from a file is byte for byte
/// the row REST would have stored.
///
/// `Rows` reads a file as it is unpacked, a chunk at a time, so a backfill never holds a file's rows; `klines` and
/// `aggTrades` read a whole file at once (tests, and the rare file that arrives out of order).
public enum ArchiveCSV {
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let line: Int
        public let reason: String
        /// Line 0 means the fault is not one line's (two rows found apart once the file was sorted).
        public var description: String { line > 0 ? "\(file) line \(line): \(reason)" : "\(file): \(reason)" }

        public init(file: String, line: Int, reason: String) {
            self.file = file
            self.line = line
            self.reason = reason
        }
    }

    /// The fields of one line, read in place (no allocation but the decimal strings a row keeps); valid only during
    /// the call it is handed to.
    public struct Fields {
        public let line: Int
        let bytes: UnsafeBufferPointer<UInt8>
        let bounds: UnsafeBufferPointer<Int>  // start, end, start, end, …
        public var count: Int { bounds.count / 2 }

        init(line: Int, bytes: UnsafeBufferPointer<UInt8>, bounds: UnsafeBufferPointer<Int>) {
            self.line = line
            self.bytes = bytes
            self.bounds = bounds
        }

        /// Field `i` without surrounding spaces.
        func range(_ i: Int) -> Range<Int> {
            var start = bounds[2 * i], end = bounds[2 * i + 1]
            while start < end && bytes[start] == 0x20 { start += 1 }
            while end > start && bytes[end - 1] == 0x20 { end -= 1 }
            return start..<end
        }

        public func text(_ i: Int) -> String { String(decoding: UnsafeBufferPointer(rebasing: bytes[range(i)]), as: UTF8.self) }

        /// A whole non-negative number of up to 18 digits, or nil.
        public func integer(_ i: Int) -> Int64? {
            let r = range(i)
            guard !r.isEmpty, r.count <= 18 else { return nil }
            var value: Int64 = 0
            for k in r {
                let digit = bytes[k] &- 0x30
                guard digit <= 9 else { return nil }
                value = value * 10 + Int64(digit)
            }
            return value
        }

        func decimal(_ i: Int, file: String, signed: Bool = false) throws(Invalid) -> DecimalString {
            do { return try DecimalString(validating: text(i), signed: signed) } catch { throw Invalid(file: file, line: line, reason: "\(error)") }
        }
    }

    /// A file's data rows as its unpacked bytes arrive: lines cut between two chunks are joined, the first line is
    /// skipped when it is a header (its first field is not a number), every other line must have `columns` fields
    /// (any of them) and is handed to `parse`.
    public struct Rows<Row> {
        /// The longest line a file may hold. A real row is under 200 bytes (a kline with 8-decimal values, a metrics row
        /// with its text time); a file whose line runs on for longer is damaged or hostile, and is refused before the
        /// line is held whole (a 3 MB zip can unpack to one 1 GB line).
        public static var maxLineBytes: Int { 4096 }
        public let file: String
        let columns: Set<Int>
        let parse: (Fields) throws(Invalid) -> Row
        /// Whether the first line is a header; by default, when its first field is not a number.
        let isHeader: ((Fields) -> Bool)?
        private var carry: [UInt8] = []
        private var bounds: [Int] = []
        public private(set) var line = 0
        /// The line being parsed, readable from inside `emit` (where `line` cannot be read: `feed` is still running).
        public let position = LinePosition()

        public init(file: String, columns: Set<Int>, isHeader: ((Fields) -> Bool)? = nil, parse: @escaping (Fields) throws(Invalid) -> Row) {
            self.file = file
            self.columns = columns
            self.parse = parse
            self.isHeader = isHeader
        }

        /// Parses every whole line of `chunk` (and the line the previous chunk left open) and hands each row to `emit`.
        public mutating func feed(_ chunk: [UInt8], _ emit: (Row) throws(Invalid) -> Void) throws(Invalid) {
            try feedLines(chunk) { row, _ throws(Invalid) in try emit(row) }
        }

        /// As `feed`, also handing over each row's line as it stands in the file (without its line end), valid only
        /// during the call: what a file sorted on disk writes out.
        public mutating func feedLines(_ chunk: [UInt8], _ emit: (Row, UnsafeBufferPointer<UInt8>) throws(Invalid) -> Void) throws(Invalid) {
            guard let lastNewline = chunk.lastIndex(of: 0x0A) else {
                try checkLength(carry.count + chunk.count)
                carry.append(contentsOf: chunk)
                return
            }
            var start = 0
            if !carry.isEmpty, let firstNewline = chunk.firstIndex(of: 0x0A) {
                try checkLength(carry.count + firstNewline)
                carry.append(contentsOf: chunk[..<firstNewline])
                let joined = carry
                carry.removeAll(keepingCapacity: true)
                try lines(joined, from: 0, to: joined.count, emit)
                start = firstNewline + 1
            }
            try lines(chunk, from: start, to: lastNewline, emit)
            try checkLength(chunk.count - lastNewline - 1)
            carry.append(contentsOf: chunk[(lastNewline + 1)...])
        }

        /// A line of `length` bytes (so far) is refused past `maxLineBytes`, naming the line it starts.
        private func checkLength(_ length: Int) throws(Invalid) {
            guard length > Self.maxLineBytes else { return }
            throw Invalid(file: file, line: line + 1, reason: "a line longer than \(Self.maxLineBytes) bytes (no row is): the file is damaged")
        }

        /// The last line, when the file does not end with a newline.
        public mutating func finish(_ emit: (Row) throws(Invalid) -> Void) throws(Invalid) {
            try finishLines { row, _ throws(Invalid) in try emit(row) }
        }

        public mutating func finishLines(_ emit: (Row, UnsafeBufferPointer<UInt8>) throws(Invalid) -> Void) throws(Invalid) {
            let rest = carry
            carry = []
            try lines(rest, from: 0, to: rest.count, emit)
        }

        /// The lines of `bytes[from..<to]` (`to` is a newline or the end).
        private mutating func lines(_ bytes: [UInt8], from: Int, to: Int, _ emit: (Row, UnsafeBufferPointer<UInt8>) throws(Invalid) -> Void) throws(Invalid) {
            var bounds = self.bounds
            defer { self.bounds = bounds }
            var line = self.line
            defer { self.line = line }
            let (file, columns, parse, headerTest) = (file, columns, parse, isHeader)
            try bytes.withUnsafeBufferPointer { (p: UnsafeBufferPointer<UInt8>) throws(Invalid) in
                var start = from
                while start <= to && start < p.count {
                    var end = start
                    while end < to && p[end] != 0x0A { end += 1 }
                    var stop = end
                    if stop > start && p[stop - 1] == 0x0D { stop -= 1 }
                    line += 1
                    position.line = line
                    if stop - start > Self.maxLineBytes {
                        throw Invalid(file: file, line: line, reason: "a line longer than \(Self.maxLineBytes) bytes (no row is): the file is damaged")
                    }
                    if stop > start {
                        bounds.removeAll(keepingCapacity: true)
                        var fieldStart = start
                        for k in start..<stop where p[k] == 0x2C {
                            bounds.append(fieldStart)
                            bounds.append(k)
                            fieldStart = k + 1
                        }
                        bounds.append(fieldStart)
                        bounds.append(stop)
                        try bounds.withUnsafeBufferPointer { (b: UnsafeBufferPointer<Int>) throws(Invalid) in
                            let fields = Fields(line: line, bytes: p, bounds: b)
                            let first = fields.range(0)
                            let isHeader = line == 1 && (headerTest.map { $0(fields) }
                                ?? (first.isEmpty || !first.allSatisfy { p[$0] >= 0x30 && p[$0] <= 0x39 }))
                            guard !isHeader else { return }
                            guard columns.contains(fields.count) else {
                                throw Invalid(file: file, line: line, reason: "\(fields.count) columns, expected \(columns.sorted().map(String.init).joined(separator: " or "))")
                            }
                            try emit(try parse(fields), UnsafeBufferPointer(rebasing: p[start..<stop]))
                        }
                    }
                    start = end + 1
                }
            }
        }
    }

    /// Where a `Rows` reader is in its file, shared with the caller's `emit` (a reference, so reading it there does
    /// not overlap the reader's own access).
    public final class LinePosition: @unchecked Sendable {
        public internal(set) var line = 0
        init() {}
    }

    /// Klines: `open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,
    /// taker_buy_quote_volume,ignore`.
    public static func klineRows(file: String) -> Rows<Kline> {
        Rows(file: file, columns: [12]) { (f: Fields) throws(Invalid) -> Kline in
            guard let open = f.integer(0).flatMap(time), let close = f.integer(6).flatMap(time), let trades = f.integer(8) else {
                throw Invalid(file: file, line: f.line, reason: "times or trade count are not whole numbers")
            }
            return Kline(openTime: open, open: try f.decimal(1, file: file), high: try f.decimal(2, file: file), low: try f.decimal(3, file: file),
                         close: try f.decimal(4, file: file), volume: try f.decimal(5, file: file), closeTime: close,
                         quoteAssetVolume: try f.decimal(7, file: file), numberOfTrades: trades,
                         takerBuyBaseAssetVolume: try f.decimal(9, file: file), takerBuyQuoteAssetVolume: try f.decimal(10, file: file))
        }
    }

    /// The candles of `series`: trade klines (`klineRows(file:)`), or a price series' files, whose columns are named
    /// as the klines' but hold only open, high, low, close, the times and, in `count`, the count of basic data (the
    /// volume columns are zeros there, and are not read). A premium index may be negative. Carried as `Kline(price:)`.
    public static func klineRows(file: String, series: PriceSeries) -> Rows<Kline> {
        guard series != .trade else { return klineRows(file: file) }
        let signed = series.allowsNegativeValues
        return Rows(file: file, columns: [12]) { (f: Fields) throws(Invalid) -> Kline in
            guard let open = f.integer(0).flatMap(time), let close = f.integer(6).flatMap(time), let count = f.integer(8) else {
                throw Invalid(file: file, line: f.line, reason: "times or count are not whole numbers")
            }
            return Kline(price: PriceKline(openTime: open, open: try f.decimal(1, file: file, signed: signed),
                                           high: try f.decimal(2, file: file, signed: signed), low: try f.decimal(3, file: file, signed: signed),
                                           close: try f.decimal(4, file: file, signed: signed), closeTime: close, basicDataCount: count))
        }
    }

    /// Aggregate trades: futures `agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker`
    /// (7 columns), spot the same plus `is_best_match` (8).
    public static func aggTradeRows(file: String) -> Rows<AggTrade> {
        Rows(file: file, columns: [7, 8]) { (f: Fields) throws(Invalid) -> AggTrade in
            guard let id = f.integer(0), let first = f.integer(3), let last = f.integer(4), let at = f.integer(5).flatMap(time) else {
                throw Invalid(file: file, line: f.line, reason: "ids or time are not whole numbers")
            }
            let maker: Bool
            switch f.text(6).lowercased() {
            case "true": maker = true
            case "false": maker = false
            case let other: throw Invalid(file: file, line: f.line, reason: "is_buyer_maker '\(other)' is neither true nor false")
            }
            return AggTrade(id: id, price: try f.decimal(1, file: file), quantity: try f.decimal(2, file: file),
                            firstTradeId: first, lastTradeId: last, time: at, isBuyerMaker: maker)
        }
    }

    /// USD-M trading metrics (`data/futures/um/daily/metrics`): `create_time,symbol,sum_open_interest,
    /// sum_open_interest_value,count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,
    /// sum_taker_long_short_vol_ratio`. `create_time` is text, `YYYY-MM-DD HH:MM:SS` in UTC; despite their names the
    /// ratio columns hold the top traders' account ratio, their position ratio, all accounts' ratio and the taker
    /// buy/sell volume ratio (binance-public-data #211 and its readers). An empty value is one Binance did not record;
    /// numbers are read in whatever notation they have (`DecimalString(normalizing:)`), so a file and REST store the same
    /// text. A row of another symbol makes the file unusable.
    public static func metricsRows(file: String, symbol: Symbol) -> Rows<FuturesMetric> {
        func time(_ f: Fields) -> Int64? {
            let text = f.text(0)
            guard text.utf8.count == 19, Array(text.utf8)[10] == 0x20 else { return nil }
            return UTCCalendar.parse(text)
        }
        return Rows(file: file, columns: [8], isHeader: { time($0) == nil }) { (f: Fields) throws(Invalid) -> FuturesMetric in
            guard let at = time(f) else { throw Invalid(file: file, line: f.line, reason: "create_time '\(f.text(0))' is not YYYY-MM-DD HH:MM:SS") }
            guard f.text(1) == symbol.name else { throw Invalid(file: file, line: f.line, reason: "symbol '\(f.text(1))' is not \(symbol.name)") }
            var values: [DecimalString?] = []
            for i in 2..<8 {
                let text = f.text(i)
                if text.isEmpty { values.append(nil); continue }
                do { values.append(try DecimalString(normalizing: text)) } catch { throw Invalid(file: file, line: f.line, reason: "\(error)") }
            }
            return FuturesMetric(time: at, sumOpenInterest: values[0], sumOpenInterestValue: values[1], topTraderAccountRatio: values[2],
                                 topTraderPositionRatio: values[3], globalAccountRatio: values[4], takerBuySellRatio: values[5])
        }
    }

    /// A whole file's klines, sorted and de-duplicated.
    public static func klines(_ bytes: [UInt8], file: String) throws(Invalid) -> [Kline] {
        try sortedUnique(all(klineRows(file: file), bytes), file: file, key: \.openTime)
    }

    /// A whole file's aggregate trades, sorted and de-duplicated.
    public static func aggTrades(_ bytes: [UInt8], file: String) throws(Invalid) -> [AggTrade] {
        try sortedUnique(all(aggTradeRows(file: file), bytes), file: file, key: \.id)
    }

    public static func all<Row>(_ reader: Rows<Row>, _ bytes: [UInt8]) throws(Invalid) -> [Row] {
        var reader = reader
        var out: [Row] = []
        try reader.feed(bytes) { out.append($0) }
        try reader.finish { out.append($0) }
        return out
    }

    /// Unix milliseconds from a file's time: milliseconds (13 digits today), or microseconds (16 digits) in spot
    /// files from 2025, floored to the millisecond (an open time stays whole; a close time `…999999` becomes `…999`).
    static func time(_ value: Int64) -> Int64? {
        value >= 100_000_000_000_000 ? value / 1000 : value
    }

    /// Sorted by key, repeats dropped; two different rows with one key are an error.
    public static func sortedUnique<Row: Equatable>(_ rows: [Row], file: String, key: (Row) -> Int64) throws(Invalid) -> [Row] {
        let sorted = rows.enumerated().sorted { (key($0.element), $0.offset) < (key($1.element), $1.offset) }.map(\.element)
        var out: [Row] = []
        out.reserveCapacity(sorted.count)
        for row in sorted {
            if let last = out.last, key(last) == key(row) {
                guard last == row else { throw Invalid(file: file, line: 0, reason: "two different rows for the key \(key(row)), apart in the file") }
                continue
            }
            out.append(row)
        }
        return out
    }
}
