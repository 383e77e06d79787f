import Foundation
import BinanceAPI
import BinanceArchive

/// data.binance.vision as binance-sim serves it, from the same deterministic market as its REST endpoints, with the
/// quirks real files have (binance-public-data's README and issues; see ARCHIVE-QUIRKS):
/// - `.zip` files of one CSV, each with a `.zip.CHECKSUM` (`<sha256>  NAME.zip`);
/// - the USD-M price series (markPriceKlines, indexPriceKlines, premiumIndexKlines) as klines files, with zero volumes;
/// - USD-M futures klines files carry a header row for periods from 2022-05 (#246), aggTrades from 2022-08-11
///   (#177); older files and every spot file have none;
/// - spot files for periods from 2025-01-01 hold microseconds (#386);
/// - a daily file appears the day after its day, a monthly one a few days into the next month (#266, #328): before
///   that, 404.
public enum ArchiveFault: Sendable, Equatable {
    /// 404, as for a day Binance never published (#170, #226).
    case missing
    /// The CHECKSUM file names a digest that is not the file's (#40, #241).
    case wrongChecksum
    /// The first `times` downloads arrive damaged (a transfer error); the CHECKSUM is right.
    case damaged(times: Int)
    /// The file holds only its first `rows` rows, and its CHECKSUM matches that (#436, #367).
    case incomplete(rows: Int)
    /// Rows out of order (#339) and some rows three times (#191), under a matching CHECKSUM.
    case disordered
    /// The zip's one entry is named `name` (another symbol's or period's CSV), its CHECKSUM matching: a file mixed up
    /// on upload, or a hostile mirror.
    case entryNamed(String)
    /// The CSV ends with a line of `bytes` bytes and no newline (a damaged or hostile file), its CHECKSUM matching.
    case runawayLine(bytes: Int)
    /// The zip's CRC-32 fields do not match its data, but the CHECKSUM is computed over that zip: the fault shows
    /// only once the entry has been read to its end.
    case badCRC
    /// The first `times` downloads that reach byte `byte` of the zip stop there: the server closes the connection
    /// mid-body (a dropped transfer), after announcing the whole length. A `Range` request resumes it (206).
    case drop(byte: Int, times: Int)
    /// The file's first `rows` rows differ from what REST answers (a volume, a trade's quantity, an open interest one
    /// digit longer), under a matching CHECKSUM: a monthly file that disagrees with REST and the daily files
    /// (binance-public-data #375, #253, #475).
    case differs(rows: Int)

    /// `missing`, `wrong-checksum`, `damaged[:N]`, `incomplete:ROWS`, `disordered`, `entry:NAME`, `runaway-line:BYTES`,
    /// `bad-crc`, `drop:BYTE[:N]`, `differs[:ROWS]`.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch parts.first {
        case "missing": self = .missing
        case "wrong-checksum": self = .wrongChecksum
        case "disordered": self = .disordered
        case "bad-crc": self = .badCRC
        case "entry":
            guard parts.count > 1, !parts[1].isEmpty else { return nil }
            self = .entryNamed(parts[1])
        case "runaway-line":
            guard parts.count > 1, let bytes = Int(parts[1]), bytes > 0 else { return nil }
            self = .runawayLine(bytes: bytes)
        case "drop":
            let numbers = parts.count > 1 ? parts[1].split(separator: ":").map { Int($0) } : []
            guard let byte = numbers.first ?? nil, byte >= 0, numbers.count <= 2 else { return nil }
            let times = numbers.count == 2 ? numbers[1] : 1
            guard let times, times >= 1 else { return nil }
            self = .drop(byte: byte, times: times)
        case "damaged": self = .damaged(times: parts.count > 1 ? (Int(parts[1]) ?? 1) : 1)
        case "differs":
            let rows = parts.count > 1 ? Int(parts[1]) : 1
            guard let rows, rows >= 1 else { return nil }
            self = .differs(rows: rows)
        case "incomplete":
            guard parts.count > 1, let rows = Int(parts[1]), rows >= 0 else { return nil }
            self = .incomplete(rows: rows)
        default: return nil
        }
    }
}

struct ArchiveTree {
    /// Daily files are published this long after their day ends, monthly ones this long after their month ends.
    static let dailyDelay: Int64 = 12 * 3_600_000
    static let monthlyDelay: Int64 = 3 * 86_400_000

    /// When a file was first uploaded: its period's end plus the publication delay.
    static func publication(of file: ArchiveFile) -> Int64 {
        switch file.period {
        case .month: file.range.upperBound + monthlyDelay
        case .day: file.range.upperBound + dailyDelay
        }
    }
    static let futuresKlinesHeaderSince = UTCCalendar.parse("2022-05-01") ?? 0
    static let futuresTradesHeaderSince = UTCCalendar.parse("2022-08-11") ?? 0
    static let spotMicrosecondsSince = UTCCalendar.parse("2025-01-01") ?? 0

    /// The file a request path names (`/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip[.CHECKSUM]`).
    static func file(at path: String) -> (file: ArchiveFile, checksum: Bool)? {
        var parts = path.split(separator: "/").map(String.init)
        guard parts.first == "data" else { return nil }
        parts.removeFirst()
        let market: Market
        if parts.first == "spot" { market = .spot; parts.removeFirst() } else if parts.count > 2, parts[0] == "futures", parts[1] == "um" || parts[1] == "cm" {
            market = parts[1] == "um" ? .futures : .coinm
            parts.removeFirst(2)
        } else { return nil }
        guard parts.count >= 4 else { return nil }
        let monthly = parts[0] == "monthly"
        guard monthly || parts[0] == "daily" else { return nil }
        guard let symbol = try? Symbol(validating: parts[2]) else { return nil }
        var name = parts[parts.count - 1]
        let checksum = name.hasSuffix(".zip.CHECKSUM")
        if checksum { name = String(name.dropLast(".CHECKSUM".count)) }
        guard name.hasSuffix(".zip") else { return nil }
        let dataset: ArchiveFile.Dataset
        switch parts[1] {
        case let folder where PriceSeries.allCases.contains(where: { $0.archiveFolder == folder }):
            // klines, and the USD-M price series' markPriceKlines, indexPriceKlines, premiumIndexKlines.
            guard let series = PriceSeries.allCases.first(where: { $0.archiveFolder == folder }), series.isAvailable(on: market),
                  parts.count == 5, let interval = parts[3] == "1mo" ? KlineInterval.mo1 : KlineInterval(rawValue: parts[3]),
                  interval != .mo1 || parts[3] == "1mo" else { return nil }
            dataset = .candles(interval, series: series)
        case "aggTrades":
            guard parts.count == 4 else { return nil }
            dataset = .aggTrades
        case "metrics":
            // Daily files only, USD-M only.
            guard parts.count == 4, market == .futures, !monthly else { return nil }
            dataset = .metrics
        default: return nil
        }
        // The date at the end of the name: YYYY-MM or YYYY-MM-DD.
        let stem = name.dropLast(4)
        let date = stem.split(separator: "-").suffix(monthly ? 2 : 3).compactMap { Int($0) }
        guard date.count == (monthly ? 2 : 3), (1...12).contains(date[1]), date[0] >= 2017, date[0] <= 9999 else { return nil }
        if !monthly {
            // A real day of its month: 2024-02-30 is no file.
            let start = UTCCalendar.days(year: Int64(date[0]), month: Int64(date[1]), day: 1) * 86_400_000
            let days = (UTCCalendar.startOfNextMonth(after: start) - start) / 86_400_000
            guard date[2] >= 1, Int64(date[2]) <= days else { return nil }
        }
        let file = ArchiveFile(market: market, dataset: dataset, symbol: symbol,
                               period: monthly ? .month(year: date[0], month: date[1]) : .day(year: date[0], month: date[1], day: date[2]))
        // Only the canonical name is a file (no `BTCUSDT-1m-2024-1.zip`).
        guard file.fileName == name else { return nil }
        return (file, checksum)
    }

    /// Whether Binance would have published the file by `now`.
    static func isPublished(_ file: ArchiveFile, now: Int64) -> Bool {
        switch file.period {
        case .month: return now >= file.range.upperBound + monthlyDelay
        case .day: return now >= file.range.upperBound + dailyDelay
        }
    }

    /// The CSV lines of a file, as Binance writes them: the header row if the file has one, and its rows (made as they
    /// are read: a month of a busy symbol's trades is tens of millions).
    static func lines(_ file: ArchiveFile, market: SimulatedMarket, now: Int64) -> (header: String?, rows: AnySequence<String>)? {
        // COIN-M's index files are the pair's (`indexPriceKlines/BTCUSD/...`), made from its perpetual.
        var name = file.symbol.name
        if file.market == .coinm, case .priceKlines(.index, _) = file.dataset { name += "_PERP" }
        guard let symbol = market.symbols[name], symbol.market == file.market || file.market == .spot && symbol.market == .futures else { return nil }
        let range = file.range
        // A symbol's folder starts with the first period it traded in and ends with its last: no file before its listing
        // or after its delisting (a 404, as for any key the bucket does not hold).
        guard range.upperBound > symbol.listedAt, symbol.delistedAt.map({ range.lowerBound < $0 }) ?? true else { return nil }
        let micro = file.market == .spot && range.lowerBound >= spotMicrosecondsSince
        func time(_ ms: Int64, close: Bool) -> String { micro ? "\(ms * 1000 + (close ? 999 : 0))" : "\(ms)" }
        var lines: [String] = []
        var header: String?
        switch file.dataset {
        case .klines(let interval), .priceKlines(_, let interval):
            // The price series' files have the klines' columns: volumes and taker volumes zero, the count of basic data
            // in `count`, and repeated timestamps on occasion (#484, the `disordered` fault).
            var series = PriceSeries.trade
            if case .priceKlines(let s, _) = file.dataset { series = s }
            if file.market != .spot && range.lowerBound >= futuresKlinesHeaderSince {
                // COIN-M files name the same columns, though `quote_volume` holds the base asset's volume and the taker
                // columns contracts and base asset (binance-public-data #267).
                header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
            }
            for k in market.klines(symbol: symbol, series: series, interval: interval, start: range.lowerBound, end: range.upperBound - 1,
                                   limit: .max, now: now) {
                lines.append("\(time(k.openTime, close: false)),\(k.open),\(k.high),\(k.low),\(k.close),\(k.volume),\(time(k.closeTime, close: true)),"
                             + "\(k.quoteAssetVolume),\(k.numberOfTrades),\(k.takerBuyBaseAssetVolume),\(k.takerBuyQuoteAssetVolume),0")
            }
        case .aggTrades:
            if file.market != .spot && range.lowerBound >= futuresTradesHeaderSince {
                header = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
            }
            guard let ids = market.aggTradeIds(symbol: symbol, fromId: nil, start: range.lowerBound, end: range.upperBound - 1, limit: .max, now: now)
            else { return (header, AnySequence([])) }
            let spot = file.market == .spot
            return (header, AnySequence(ids.lazy.map { id -> String in
                let t = market.aggTrade(symbol: symbol, id: id)
                let base = "\(t.id),\(t.price),\(t.quantity),\(t.firstTradeId),\(t.lastTradeId),\(time(t.time, close: false))"
                return spot ? base + ",\(t.isBuyerMaker ? "True" : "False"),True" : base + ",\(t.isBuyerMaker)"
            }))
        case .metrics:
            // Always a header; create_time as text; decimals padded with zeros to 8 places and ratios to 10, the taker
            // ratio of every 7th row in exponent notation (what a file written from floats may hold); a value Binance
            // lacks is empty. REST writes the same values plainly.
            header = "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
                + "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"
            func padded(_ value: DecimalString?, _ places: Int) -> String {
                guard let text = value?.text else { return "" }
                let parts = text.split(separator: ".", omittingEmptySubsequences: false)
                let fraction = parts.count > 1 ? String(parts[1]) : ""
                return "\(parts[0])." + fraction + String(repeating: "0", count: max(0, places - fraction.count))
            }
            func exponent(_ value: DecimalString?) -> String {
                guard let text = value?.text, let point = text.firstIndex(of: "."), text.first != "0" else { return padded(value, 10) }
                let integer = text[..<point], fraction = text[text.index(after: point)...]
                return "\(integer.prefix(1)).\(integer.dropFirst())\(fraction)e+\(String(format: "%02d", integer.count - 1))"
            }
            for m in market.metrics(symbol: symbol, start: range.lowerBound, end: range.upperBound - 1, now: .max) {
                // `2024-01-21T00:05:00.000Z` written as `2024-01-21 00:05:00`.
                let stamp = UTCCalendar.iso8601(m.time).prefix(19).replacingOccurrences(of: "T", with: " ")
                let taker = (m.time / FuturesMetrics.periodMilliseconds) % 7 == 0 ? exponent(m.takerBuySellRatio) : padded(m.takerBuySellRatio, 10)
                lines.append("\(stamp),\(symbol.name),\(padded(m.sumOpenInterest, 8)),\(padded(m.sumOpenInterestValue, 8)),"
                             + "\(padded(m.topTraderAccountRatio, 10)),\(padded(m.topTraderPositionRatio, 10)),\(padded(m.globalAccountRatio, 10)),\(taker)")
            }
        }
        return (header, AnySequence(lines))
    }
}
