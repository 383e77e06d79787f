import BinanceAPI

/// A batch of aggregate trades as tab-separated lines, field by field into one buffer (a busy symbol's month is tens
/// of millions of rows): what PostgreSQL's COPY and MariaDB's LOAD DATA read. Symbols, numbers, Binance's decimals and
/// the times written here hold nothing either must escape.
public enum TradeText {
    /// How a trade's time is written: ISO 8601 with `Z` (PostgreSQL's timestamptz), or `YYYY-MM-DD HH:MM:SS.mmm` in
    /// UTC (MariaDB's DATETIME(3), which takes no zone).
    public enum TimeStyle: Sendable { case iso8601, datetime }

    /// Columns: symbol, id, price, quantity, first id, last id, time, buyer-maker (`yes` or `no` byte).
    public static func lines(symbol: Symbol, trades: [AggTrade], time: TimeStyle, yes: UInt8, no: UInt8) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(trades.count * 112)
        let name = Array(symbol.name.utf8)
        // Digits straight into the buffer (no String per number: three a row).
        var digits = [UInt8](repeating: 0, count: 20)
        func integer(_ n: Int64) {
            out.append(0x09)
            if n < 0 { out.append(0x2D) }
            var v = n.magnitude, i = 20
            repeat {
                i -= 1
                digits[i] = 0x30 + UInt8(v % 10)
                v /= 10
            } while v > 0
            out.append(contentsOf: digits[i...])
        }
        for t in trades {
            out.append(contentsOf: name)
            integer(t.id)
            out.append(0x09)
            out.append(contentsOf: t.price.text.utf8)
            out.append(0x09)
            out.append(contentsOf: t.quantity.text.utf8)
            integer(t.firstTradeId)
            integer(t.lastTradeId)
            out.append(0x09)
            let start = out.count
            UTCCalendar.appendISO8601(t.time, into: &out)  // 2024-04-01T00:00:00.000Z
            if time == .datetime {
                out[start + 10] = 0x20
                out.removeLast()
            }
            out.append(0x09)
            out.append(t.isBuyerMaker ? yes : no)
            out.append(0x0A)
        }
        return out
    }
}
