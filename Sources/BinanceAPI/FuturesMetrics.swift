import Foundation

/// One 5-minute row of a USD-M symbol's open interest and trader ratios: what `futures_metrics` holds. A value
/// Binance has not published for that time (one of the five endpoints lacks the row, or an old file leaves it empty) is nil.
public struct FuturesMetric: Sendable, Equatable {
    /// The 5-minute time the values are for (Unix ms, UTC).
    public var time: Int64
    /// Open interest, in contracts (base asset), and its value (quote asset).
    public var sumOpenInterest: DecimalString?
    public var sumOpenInterestValue: DecimalString?
    /// Long/short ratio of the accounts of the top 20 % traders by margin, and of their positions.
    public var topTraderAccountRatio: DecimalString?
    public var topTraderPositionRatio: DecimalString?
    /// Long/short ratio of all accounts.
    public var globalAccountRatio: DecimalString?
    /// Taker buy volume / taker sell volume.
    public var takerBuySellRatio: DecimalString?

    public init(time: Int64, sumOpenInterest: DecimalString? = nil, sumOpenInterestValue: DecimalString? = nil,
                topTraderAccountRatio: DecimalString? = nil, topTraderPositionRatio: DecimalString? = nil,
                globalAccountRatio: DecimalString? = nil, takerBuySellRatio: DecimalString? = nil) {
        self.time = time
        self.sumOpenInterest = sumOpenInterest
        self.sumOpenInterestValue = sumOpenInterestValue
        self.topTraderAccountRatio = topTraderAccountRatio
        self.topTraderPositionRatio = topTraderPositionRatio
        self.globalAccountRatio = globalAccountRatio
        self.takerBuySellRatio = takerBuySellRatio
    }

    /// The values in the table's column order (`FuturesMetrics.valueColumns`).
    public var values: [DecimalString?] {
        [sumOpenInterest, sumOpenInterestValue, topTraderAccountRatio, topTraderPositionRatio, globalAccountRatio, takerBuySellRatio]
    }
}

/// The rules of USD-M's trading data endpoints (USD-M Futures, Market Data: "Open Interest Statistics", "Top Trader
/// Long/Short Ratio (Accounts)", "Top Trader Long/Short Ratio (Positions)", "Long/Short Ratio", "Taker Buy/Sell
/// Volume"), all `GET /futures/data/...` with `symbol`, `period`, `limit` ("default 30, max 500"), `startTime`,
/// `endTime`:
/// - "Request Weight: 0": they spend none of the weight budget, but have a limit of their own per IP, 1000 requests
///   per 5 minutes (the same pages before Binance dropped the line from some of them); a run paces them with it;
/// - "If startTime and endTime are not sent, the most recent data is returned";
/// - "Only the data of the latest 30 days is available": an older `startTime` is refused (400, -1130 "parameter
///   'startTime' is invalid"), so a run never sends one, and history comes from the archives' daily `metrics` files;
/// - the rows answered for a `startTime`/`endTime` window are the newest `limit` of it, so a run asks for windows of
///   at most `limit` periods, where oldest-first and newest-first agree.
public enum FuturesMetrics {
    public static let period = "5m"
    public static let periodMilliseconds: Int64 = 300_000
    public static let maxLimit = 500
    public static let requestRule = RateLimitRule(limit: 1000, windowMilliseconds: 300_000)
    /// How far back REST answers; a run keeps a margin for clock skew between Binance and us.
    public static let restHistoryMilliseconds: Int64 = 30 * 86_400_000
    public static let restHistoryMargin: Int64 = 10 * 60_000

    /// Value columns of `futures_metrics`, in `FuturesMetric.values` order.
    public static let valueColumns = ["sum_open_interest", "sum_open_interest_value", "top_trader_long_short_account_ratio",
                                      "top_trader_long_short_position_ratio", "global_long_short_account_ratio", "taker_buy_sell_volume_ratio"]

    /// The oldest time REST may be asked for at `now`.
    public static func restFloor(now: Int64) -> Int64 {
        let earliest = now - restHistoryMilliseconds + restHistoryMargin
        return (earliest + periodMilliseconds - 1) / periodMilliseconds * periodMilliseconds
    }

    /// One of the five endpoints: its path, and which values of a row it answers.
    public enum Endpoint: String, Sendable, CaseIterable {
        case openInterest = "openInterestHist"
        case topTraderAccounts = "topLongShortAccountRatio"
        case topTraderPositions = "topLongShortPositionRatio"
        case globalAccounts = "globalLongShortAccountRatio"
        case taker = "takerlongshortRatio"

        public var path: String { "/futures/data/" + rawValue }

        /// The JSON fields read, in order.
        var fields: [String] {
            switch self {
            case .openInterest: ["sumOpenInterest", "sumOpenInterestValue"]
            case .topTraderAccounts, .topTraderPositions, .globalAccounts: ["longShortRatio"]
            case .taker: ["buySellRatio"]
            }
        }

        public func pathAndQuery(symbol: Symbol, startTime: Int64, endTime: Int64, limit: Int) -> String {
            "\(path)?symbol=\(symbol.name)&period=\(FuturesMetrics.period)&startTime=\(startTime)&endTime=\(endTime)&limit=\(limit)"
        }

        /// Puts this endpoint's values into `row`.
        func fill(_ row: inout FuturesMetric, _ values: [DecimalString]) {
            switch self {
            case .openInterest: (row.sumOpenInterest, row.sumOpenInterestValue) = (values[0], values[1])
            case .topTraderAccounts: row.topTraderAccountRatio = values[0]
            case .topTraderPositions: row.topTraderPositionRatio = values[0]
            case .globalAccounts: row.globalAccountRatio = values[0]
            case .taker: row.takerBuySellRatio = values[0]
            }
        }

        /// Parses and checks one page: rows of `symbol` (where a row names one), times on the 5-minute grid, ascending,
        /// inside `[startTime, endTime]`, at most `limit`; values non-negative decimals, stored exactly whatever their
        /// notation (`DecimalString(normalizing:)`). `timestamp` may be a number or a string (Binance's examples show both).
        public func parse(_ body: [UInt8], symbol: Symbol, startTime: Int64, endTime: Int64, limit: Int) throws(BinanceError) -> [(Int64, [DecimalString])] {
            guard let rows = (try? JSONSerialization.jsonObject(with: Data(body))) as? [[String: Any]] else {
                throw .malformedBody("\(rawValue) page is not a JSON list of rows")
            }
            guard rows.count <= limit else { throw .malformedBody("\(rows.count) \(rawValue) rows in a page asked for at most \(limit)") }
            var out: [(Int64, [DecimalString])] = []
            out.reserveCapacity(rows.count)
            for row in rows {
                let time: Int64
                switch row["timestamp"] {
                case let text as String where Int64(text) != nil: time = Int64(text) ?? 0
                case let number as NSNumber where Int64(number.stringValue) != nil: time = Int64(number.stringValue) ?? 0
                default: throw .malformedBody("\(rawValue) row without a whole-number timestamp: \(row)")
                }
                let at = UTCCalendar.iso8601(time)
                if let named = row["symbol"] as? String, named != symbol.name {
                    throw .malformedBody("\(rawValue) row at \(at) is for \(named), not the \(symbol.name) asked for")
                }
                guard time >= startTime, time <= endTime else {
                    throw .malformedBody("\(rawValue) row at \(at) is outside the requested window \(UTCCalendar.iso8601(startTime)) .. \(UTCCalendar.iso8601(endTime))")
                }
                guard time % FuturesMetrics.periodMilliseconds == 0 else { throw .malformedBody("\(rawValue) row at \(at) is not on the 5-minute grid") }
                if let previous = out.last?.0, time <= previous {
                    throw .malformedBody(time == previous ? "\(rawValue) row at \(at) appears twice" : "\(rawValue) rows out of order at \(at)")
                }
                var values: [DecimalString] = []
                for field in fields {
                    guard let text = row[field] as? String else { throw .malformedBody("\(rawValue) row at \(at): \(field) is not a decimal string") }
                    do { values.append(try DecimalString(normalizing: text)) } catch {
                        throw .malformedBody("\(rawValue) row at \(at): \(field) \(error)")
                    }
                }
                out.append((time, values))
            }
            return out
        }
    }

    /// The endpoints' pages of one window, joined by time into rows, oldest first.
    public static func merge(_ pages: [(Endpoint, [(Int64, [DecimalString])])]) -> [FuturesMetric] {
        var rows: [Int64: FuturesMetric] = [:]
        for (endpoint, page) in pages {
            for (time, values) in page { endpoint.fill(&rows[time, default: FuturesMetric(time: time)], values) }
        }
        return rows.values.sorted { $0.time < $1.time }
    }
}

extension DecimalString {
    /// A non-negative decimal in any of the notations files and answers use (`1.5`, `1.50000000`, ` 1.5 `, `1.5e-05`,
    /// `2E+3`), written plainly with no leading or trailing zeros, so one value is one text wherever it came from.
    /// What the columns cannot hold exactly is refused as `init(validating:)` refuses it.
    public init(normalizing raw: String) throws(DecimalStringError) {
        let text = raw.trimmingCharacters(in: .whitespaces)
        let parts = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "e" || $0 == "E" })
        guard parts.count <= 2, let mantissa = parts.first else { throw DecimalStringError(text: raw, reason: "not a decimal number") }
        var exponent = 0
        if parts.count == 2 {
            let e = parts[1].hasPrefix("+") ? parts[1].dropFirst() : parts[1]
            guard let value = Int(e), abs(value) <= 40 else { throw DecimalStringError(text: raw, reason: "not a decimal number") }
            exponent = value
        }
        let checked = try DecimalString(validating: mantissa.hasPrefix(".") ? "0" + mantissa : String(mantissa))
        let pieces = checked.text.split(separator: ".", omittingEmptySubsequences: false)
        var digits = Array(pieces[0].utf8) + (pieces.count > 1 ? Array(pieces[1].utf8) : [])
        var point = pieces[0].utf8.count + exponent  // digits before the point
        if point < 0 { digits = Array(repeating: 48, count: -point) + digits; point = 0 }
        if point > digits.count { digits += Array(repeating: 48, count: point - digits.count) }
        var integer = Array(digits[..<point].drop(while: { $0 == 48 }))
        var fraction = Array(digits[point...])
        while fraction.last == 48 { fraction.removeLast() }
        if integer.isEmpty { integer = [48] }
        let plain = String(decoding: integer, as: UTF8.self) + (fraction.isEmpty ? "" : "." + String(decoding: fraction, as: UTF8.self))
        do { self = try DecimalString(validating: plain) } catch { throw DecimalStringError(text: raw, reason: error.reason) }
    }
}
