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
public enum ArchiveCSV {
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let file: String
        public let line: Int
        public let reason: String
        public var description: String { "\(file) line \(line): \(reason)" }
    }

    /// Klines: `open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,
    /// taker_buy_quote_volume,ignore`.
    public static func klines(_ bytes: [UInt8], file: String) throws(Invalid) -> [Kline] {
        var out: [Kline] = []
        try forEachRow(bytes, file: file, columns: 12) { (line, f) throws(Invalid) in
            func decimal(_ i: Int) throws(Invalid) -> DecimalString {
                do { return try DecimalString(validating: f[i]) } catch { throw Invalid(file: file, line: line, reason: "\(error)") }
            }
            guard let open = time(f[0]), let close = time(f[6]), let trades = Int64(f[8]), trades >= 0 else {
                throw Invalid(file: file, line: line, reason: "times or trade count are not whole numbers")
            }
            out.append(Kline(openTime: open, open: try decimal(1), high: try decimal(2), low: try decimal(3), close: try decimal(4),
                             volume: try decimal(5), closeTime: close, quoteAssetVolume: try decimal(7), numberOfTrades: trades,
                             takerBuyBaseAssetVolume: try decimal(9), takerBuyQuoteAssetVolume: try decimal(10)))
        }
        return try sortedUnique(out, file: file, key: \.openTime)
    }

    /// Aggregate trades: futures `agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker`
    /// (7 columns), spot the same plus `is_best_match` (8).
    public static func aggTrades(_ bytes: [UInt8], file: String) throws(Invalid) -> [AggTrade] {
        var out: [AggTrade] = []
        try forEachRow(bytes, file: file, columns: nil) { (line, f) throws(Invalid) in
            guard f.count == 7 || f.count == 8 else {
                throw Invalid(file: file, line: line, reason: "\(f.count) columns, expected 7 (futures) or 8 (spot)")
            }
            guard let id = Int64(f[0]), let first = Int64(f[3]), let last = Int64(f[4]), let at = time(f[5]) else {
                throw Invalid(file: file, line: line, reason: "ids or time are not whole numbers")
            }
            let maker: Bool
            switch f[6].lowercased() {
            case "true": maker = true
            case "false": maker = false
            default: throw Invalid(file: file, line: line, reason: "is_buyer_maker '\(f[6])' is neither true nor false")
            }
            do {
                out.append(AggTrade(id: id, price: try DecimalString(validating: f[1]), quantity: try DecimalString(validating: f[2]),
                                    firstTradeId: first, lastTradeId: last, time: at, isBuyerMaker: maker))
            } catch {
                throw Invalid(file: file, line: line, reason: "\(error)")
            }
        }
        return try sortedUnique(out, file: file, key: \.id)
    }

    /// Unix milliseconds from a file's time: milliseconds (13 digits today), or microseconds (16 digits) in spot
    /// files from 2025, floored to the millisecond (an open time stays whole; a close time `…999999` becomes `…999`).
    static func time(_ text: String) -> Int64? {
        guard let value = Int64(text), value >= 0 else { return nil }
        return value >= 100_000_000_000_000 ? value / 1000 : value
    }

    /// Calls `body` with each data row's line number and fields; a first line whose first field is not a number is
    /// the header and is skipped.
    static func forEachRow(_ bytes: [UInt8], file: String, columns: Int?,
                           _ body: (Int, [String]) throws(Invalid) -> Void) throws(Invalid) {
        var line = 0
        var start = 0
        let count = bytes.count
        while start < count {
            var end = start
            while end < count && bytes[end] != 0x0A { end += 1 }
            var stop = end
            if stop > start && bytes[stop - 1] == 0x0D { stop -= 1 }
            line += 1
            if stop > start {
                let fields = bytes[start..<stop].split(separator: 0x2C, omittingEmptySubsequences: false)
                    .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: " ") }
                let isHeader = line == 1 && !(fields.first.map { !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } } ?? false)
                if !isHeader {
                    if let columns, fields.count != columns {
                        throw Invalid(file: file, line: line, reason: "\(fields.count) columns, expected \(columns)")
                    }
                    try body(line, fields)
                }
            }
            start = end + 1
        }
    }

    /// Sorted by key, repeats dropped; two different rows with one key are an error.
    static func sortedUnique<Row: Equatable>(_ rows: [Row], file: String, key: (Row) -> Int64) throws(Invalid) -> [Row] {
        let sorted = rows.enumerated().sorted { (key($0.element), $0.offset) < (key($1.element), $1.offset) }.map(\.element)
        var out: [Row] = []
        out.reserveCapacity(sorted.count)
        for row in sorted {
            if let last = out.last, key(last) == key(row) {
                guard last == row else { throw Invalid(file: file, line: 0, reason: "two different rows for key \(key(row))") }
                continue
            }
            out.append(row)
        }
        return out
    }
}

private extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
