import BinanceAPI

/// One file of Binance's public archives (data.binance.vision, the binance-public-data project):
/// `data/{spot|futures/um}/{monthly|daily}/{klines|markPriceKlines|indexPriceKlines|premiumIndexKlines|aggTrades}/
/// SYMBOL[/INTERVAL]/NAME.zip`, with
/// `NAME.zip.CHECKSUM` beside it. Monthly names write the 1M interval `1mo` (binance-public-data README).
public struct ArchiveFile: Sendable, Hashable, CustomStringConvertible {
    public enum Dataset: Sendable, Hashable {
        case klines(KlineInterval)
        /// Mark, index or premium index candles (USD-M): named as klines files are, in the series' own folder.
        case priceKlines(PriceSeries, KlineInterval)
        case aggTrades
        /// USD-M open interest and trader ratios, one daily file per symbol (`data/futures/um/daily/metrics/SYM/
        /// SYM-metrics-YYYY-MM-DD.zip`); there are no monthly ones.
        case metrics

        /// The candles of `series` at `interval`.
        public static func candles(_ interval: KlineInterval, series: PriceSeries) -> Dataset {
            series == .trade ? .klines(interval) : .priceKlines(series, interval)
        }
    }

    public enum Period: Sendable, Hashable {
        case month(year: Int, month: Int)
        case day(year: Int, month: Int, day: Int)
    }

    public let market: Market
    public let dataset: Dataset
    public let symbol: Symbol
    public let period: Period

    public init(market: Market, dataset: Dataset, symbol: Symbol, period: Period) {
        self.market = market
        self.dataset = dataset
        self.symbol = symbol
        self.period = period
    }

    /// `1m`, `1h`, … and `1mo` for the month: the archives' own spelling.
    public static func name(of interval: KlineInterval) -> String { interval == .mo1 ? "1mo" : interval.rawValue }

    /// `BTCUSDT-1m-2024-01.zip`, `BTCUSDT-aggTrades-2024-01-02.zip`.
    public var fileName: String {
        let kind: String
        switch dataset {
        case .klines(let interval), .priceKlines(_, let interval): kind = Self.name(of: interval)
        case .aggTrades: kind = "aggTrades"
        case .metrics: kind = "metrics"
        }
        return "\(symbol.name)-\(kind)-\(periodText).zip"
    }

    /// The path below the archive's base URL.
    public var path: String {
        let root = switch market {
        case .futures: "data/futures/um"
        case .coinm: "data/futures/cm"
        case .spot: "data/spot"
        }
        let frequency: String
        switch period {
        case .month: frequency = "monthly"
        case .day: frequency = "daily"
        }
        switch dataset {
        case .klines(let interval): return "\(root)/\(frequency)/klines/\(symbol.name)/\(Self.name(of: interval))/\(fileName)"
        case .priceKlines(let series, let interval):
            return "\(root)/\(frequency)/\(series.archiveFolder)/\(symbol.name)/\(Self.name(of: interval))/\(fileName)"
        case .aggTrades: return "\(root)/\(frequency)/aggTrades/\(symbol.name)/\(fileName)"
        case .metrics: return "\(root)/\(frequency)/metrics/\(symbol.name)/\(fileName)"
        }
    }

    public var checksumPath: String { path + ".CHECKSUM" }

    public var description: String { fileName }

    /// The dataset's folder in the archives (`klines`, `markPriceKlines`, `aggTrades`, `metrics`).
    public var datasetFolder: String {
        switch dataset {
        case .klines: "klines"
        case .priceKlines(let series, _): series.archiveFolder
        case .aggTrades: "aggTrades"
        case .metrics: "metrics"
        }
    }

    /// The interval of a klines file as the archives write it (`1h`, `1mo`); empty for other datasets.
    public var seriesText: String {
        switch dataset {
        case .klines(let interval), .priceKlines(_, let interval): Self.name(of: interval)
        case .aggTrades, .metrics: ""
        }
    }

    /// A file described by its folder, interval, symbol and period text, as the ledger records it; nil when any part is
    /// not one the archives have.
    public init?(market: Market, datasetFolder: String, symbol: String, series: String, period: String) {
        guard let symbol = try? Symbol(validating: symbol) else { return nil }
        let interval = series == "1mo" ? KlineInterval.mo1 : KlineInterval(rawValue: series)
        let dataset: Dataset
        switch datasetFolder {
        case "aggTrades": dataset = .aggTrades
        case "metrics": dataset = .metrics
        default:
            guard let interval, let series = PriceSeries.allCases.first(where: { $0.archiveFolder == datasetFolder }) else { return nil }
            dataset = .candles(interval, series: series)
        }
        let parts = period.split(separator: "-").map { Int($0) }
        guard parts.allSatisfy({ $0 != nil }) else { return nil }
        switch parts.count {
        case 2 where (1...12).contains(parts[1]!) && parts[0]! >= 2000:
            self.init(market: market, dataset: dataset, symbol: symbol, period: .month(year: parts[0]!, month: parts[1]!))
        case 3 where (1...12).contains(parts[1]!) && (1...31).contains(parts[2]!) && parts[0]! >= 2000:
            self.init(market: market, dataset: dataset, symbol: symbol, period: .day(year: parts[0]!, month: parts[1]!, day: parts[2]!))
        default:
            return nil
        }
        // A day that does not exist (2024-02-30) would name another day's file.
        guard self.periodText == period, UTCCalendar.iso8601(range.lowerBound).hasPrefix(period) else { return nil }
    }

    /// `2024-01` or `2024-01-02`.
    public var periodText: String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        switch period {
        case .month(let y, let m): return "\(y)-\(two(m))"
        case .day(let y, let m, let d): return "\(y)-\(two(m))-\(two(d))"
        }
    }

    /// The times the file covers, `[start, end)` in Unix milliseconds, UTC.
    public var range: Range<Int64> {
        switch period {
        case .month(let y, let m):
            let start = UTCCalendar.days(year: Int64(y), month: Int64(m), day: 1) * 86_400_000
            return start..<UTCCalendar.startOfNextMonth(after: start)
        case .day(let y, let m, let d):
            let start = UTCCalendar.days(year: Int64(y), month: Int64(m), day: Int64(d)) * 86_400_000
            return start..<(start + 86_400_000)
        }
    }
}
