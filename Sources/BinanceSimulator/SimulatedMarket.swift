import Clocks
import Foundation
import BinanceAPI

/// A symbol the simulator lists, with when it was listed (its first candle) and, optionally, delisted.
public struct SimulatedSymbol: Sendable, Hashable {
    public var name: String
    public var listedAt: Int64
    public var delistedAt: Int64?
    /// Price around which candles move, in units of 1e-8.
    public var basePriceTicks: Int64
    /// Typical base volume of a one-minute candle (meme coins trade huge base volumes: above 10^13 per day).
    public var baseVolumePerMinute: Int64
    /// A COIN-M contract's size in USD (100 for BTCUSD, 10 for the others): its volumes count contracts. Nil for
    /// USD-M and spot symbols.
    public var contractSize: Int64?
    /// A COIN-M delivery contract's delivery (`BTCUSD_240628`: 08:00 UTC that day): no candles from then on, though its
    /// history is still answered.
    public var deliveredAt: Int64?
    /// Aggregate trades per minute (6 by default: one every 10 s); binance-sim's `--trades-per-minute` raises it so a
    /// monthly aggTrades file reaches Binance's real sizes (tens of millions of rows).
    public var tradesPerMinute: Int64 = 6

    public init(name: String, listedAt: Int64, delistedAt: Int64? = nil, basePriceTicks: Int64, baseVolumePerMinute: Int64,
                contractSize: Int64? = nil) {
        self.name = name
        self.listedAt = listedAt
        self.delistedAt = delistedAt
        self.basePriceTicks = basePriceTicks
        self.baseVolumePerMinute = baseVolumePerMinute
        self.contractSize = contractSize
        deliveredAt = contractSize == nil ? nil : (try? Symbol(validating: name))?.deliveryTime
    }

    /// Which market lists it.
    public var market: Market { contractSize == nil ? .futures : .coinm }
}

/// Deterministic market history: the same (symbol, interval, open time) always gives the same closed candle,
/// so tests can compare what was stored with what was served, field by field.
public struct SimulatedMarket: Sendable {
    public var symbols: [String: SimulatedSymbol]
    /// Exchange outages: no candles open inside these [start, end) ranges.
    public var outages: [Range<Int64>]

    public init(symbols: [SimulatedSymbol], outages: [Range<Int64>] = []) {
        self.symbols = Dictionary(uniqueKeysWithValues: symbols.map { ($0.name, $0) })
        self.outages = outages
    }

    /// A default set: majors listed years ago, a meme coin with volumes above 10^13 and prices below 1e-4, and a
    /// symbol listed three days before `now`.
    public static func standard(now: Int64) -> SimulatedMarket {
        SimulatedMarket(symbols: [
            SimulatedSymbol(name: "BTCUSDT", listedAt: 1_568_102_400_000, basePriceTicks: 6_000_000_000_000, baseVolumePerMinute: 150),
            SimulatedSymbol(name: "ETHUSDT", listedAt: 1_569_398_400_000, basePriceTicks: 300_000_000_000, baseVolumePerMinute: 2_000),
            SimulatedSymbol(name: "SOLUSDT", listedAt: 1_600_000_000_000, basePriceTicks: 15_000_000_000, baseVolumePerMinute: 20_000),
            SimulatedSymbol(name: "BNBUSDT", listedAt: 1_581_000_000_000, basePriceTicks: 50_000_000_000, baseVolumePerMinute: 3_000),
            SimulatedSymbol(name: "XRPUSDT", listedAt: 1_578_000_000_000, basePriceTicks: 60_000_000, baseVolumePerMinute: 900_000),
            SimulatedSymbol(name: "PEPEUSDT", listedAt: 1_683_000_000_000, basePriceTicks: 1_234, baseVolumePerMinute: 40_000_000_000_000),
            SimulatedSymbol(name: "NEWUSDT", listedAt: KlineInterval.d1.openTime(containing: now) - 3 * 86_400_000,
                            basePriceTicks: 100_000_000, baseVolumePerMinute: 500_000),
            // Delisted: Binance answers -1121 for it, as for any symbol it no longer lists.
            SimulatedSymbol(name: "OLDUSDT", listedAt: 1_577_836_800_000, delistedAt: 1_685_577_600_000,
                            basePriceTicks: 20_000_000, baseVolumePerMinute: 100_000),
            // COIN-M: perpetuals since COIN-M began, and BTCUSD's quarterly contracts around `now`.
            SimulatedSymbol(name: "BTCUSD_PERP", listedAt: 1_597_017_600_000, basePriceTicks: 6_000_000_000_000, baseVolumePerMinute: 5_000,
                            contractSize: 100),
            SimulatedSymbol(name: "ETHUSD_PERP", listedAt: 1_597_622_400_000, basePriceTicks: 300_000_000_000, baseVolumePerMinute: 20_000,
                            contractSize: 10),
        ] + quarterlies(pair: "BTCUSD", now: now))
    }

    /// The quarterly delivery contracts of `pair` around `now`: the one that delivered last, the current quarter's and
    /// the next quarter's. Each delivers at 08:00 UTC on the last Friday of March, June, September or December, and is
    /// listed two quarters before (Binance, "Delivery Futures").
    public static func quarterlies(pair: String, now: Int64) -> [SimulatedSymbol] {
        guard let around = QuarterlyDelivery.around(now) else { return [] }
        return [around.last, around.current, around.next].map { delivery in
            SimulatedSymbol(name: QuarterlyDelivery.symbol(pair: pair, delivery: delivery),
                            listedAt: KlineInterval.d1.openTime(containing: delivery - 182 * 86_400_000),
                            basePriceTicks: 6_100_000_000_000, baseVolumePerMinute: 2_000, contractSize: 100)
        }
    }

    /// Funding happens every 8 hours at 00:00, 08:00 and 16:00 UTC (USD-M perpetuals' default schedule).
    public static let fundingIntervalMilliseconds: Int64 = 8 * 3_600_000
    /// Funding records before this moment carry an empty mark price, as Binance's oldest records do.
    public static let markPriceSince: Int64 = 1_577_836_800_000  // 2020-01-01

    /// Funding events with funding time in [start, end] (and not after now), oldest first, at most `limit`.
    public func fundingRates(symbol: SimulatedSymbol, start: Int64, end: Int64, limit: Int, now: Int64) -> [FundingRate] {
        let step = Self.fundingIntervalMilliseconds
        if symbol.deliveredAt != nil { return [] }  // delivery contracts have no funding
        let first = max(start, symbol.listedAt)
        var t = (first + step - 1) / step * step
        var out: [FundingRate] = []
        while t <= min(end, now), out.count < limit {
            if let delisted = symbol.delistedAt, t >= delisted { break }
            out.append(fundingRate(symbol: symbol, at: t))
            t += step
        }
        return out
    }

    func fundingRate(symbol: SimulatedSymbol, at t: Int64) -> FundingRate {
        var rng = SplitMix64(seed: Self.seed(symbol.name, "funding", t))
        let ticks = Int64(rng.next() % 200_001) - 100_000  // -0.001 .. 0.001, in 1e-8
        let magnitude = Self.ticks(abs(ticks)).text
        let rate = DecimalString(unchecked: ticks < 0 ? "-" + magnitude : magnitude)
        let mark = t < Self.markPriceSince ? nil
            : Self.ticks(symbol.basePriceTicks + Int64(rng.next() % UInt64(max(1, symbol.basePriceTicks / 50))))
        return FundingRate(fundingTime: t, fundingRate: rate, markPrice: mark)
    }

    /// One aggregate trade every `tradeSpacingMilliseconds` from listing at the default pace; ids count from 0.
    public static let tradeSpacingMilliseconds: Int64 = 10_000

    func firstTradeTime(_ symbol: SimulatedSymbol) -> Int64 {
        let step = Self.tradeSpacingMilliseconds
        return (symbol.listedAt + step - 1) / step * step
    }

    /// Trade `id`'s time: `tradesPerMinute` trades a minute, evenly spread (several share a millisecond past 60,000).
    func tradeTime(_ symbol: SimulatedSymbol, id: Int64) -> Int64 {
        firstTradeTime(symbol) + Int64(Int128(id) * 60_000 / Int128(max(1, symbol.tradesPerMinute)))
    }

    /// The first trade at or after `time` (0 before the first trade).
    func firstTrade(_ symbol: SimulatedSymbol, atOrAfter time: Int64) -> Int64 {
        let elapsed = Int128(max(0, time - firstTradeTime(symbol))), pace = Int128(max(1, symbol.tradesPerMinute))
        return Int64((elapsed * pace + 59_999) / 60_000)
    }

    /// The last trade at or before `time` (-1 before the first trade).
    func lastTrade(_ symbol: SimulatedSymbol, atOrBefore time: Int64) -> Int64 {
        let elapsed = Int128(time - firstTradeTime(symbol)), pace = Int128(max(1, symbol.tradesPerMinute))
        guard elapsed >= 0 else { return -1 }
        // time(id) <= time  <=>  id * 60,000 < (elapsed + 1) * pace
        return Int64(((elapsed + 1) * pace - 1) / 60_000)
    }

    public func aggTrade(symbol: SimulatedSymbol, id: Int64) -> AggTrade {
        let time = tradeTime(symbol, id: id)
        var rng = SplitMix64(seed: Self.seed(symbol.name, "trade", id))
        let span = max(1, symbol.basePriceTicks / 100)
        let price = symbol.basePriceTicks + Int64(rng.next() % UInt64(span))
        let quantity = Int64(rng.next() % 1_000_000_000) + 1
        // COIN-M trades count whole contracts.
        let amount = symbol.contractSize == nil ? Self.ticks(quantity) : DecimalString(unchecked: "\(quantity % 500 + 1)")
        return AggTrade(id: id, price: Self.ticks(price), quantity: amount, firstTradeId: id * 2, lastTradeId: id * 2 + 1,
                        time: time, isBuyerMaker: rng.next() & 1 == 1)
    }

    /// The ids of the trades `aggTrades` answers: id >= fromId, or time in [start, end], never after now, at most
    /// `limit`, oldest first.
    public func aggTradeIds(symbol: SimulatedSymbol, fromId: Int64?, start: Int64?, end: Int64?, limit: Int, now: Int64) -> ClosedRange<Int64>? {
        let lastTime = min(now, symbol.delistedAt.map { $0 - 1 } ?? now)
        let lastId = lastTrade(symbol, atOrBefore: lastTime)
        guard lastId >= 0 else { return nil }
        let firstId: Int64
        var maxId = lastId
        if let fromId {
            firstId = max(0, fromId)
        } else if let start {
            firstId = firstTrade(symbol, atOrAfter: start)
            if let end { maxId = min(maxId, lastTrade(symbol, atOrBefore: end)) }
        } else if let end {
            maxId = min(maxId, lastTrade(symbol, atOrBefore: end))
            firstId = max(0, maxId - Int64(limit) + 1)
        } else {
            firstId = max(0, lastId - Int64(limit) + 1)
        }
        guard firstId <= maxId else { return nil }
        // `limit` may be Int.max (the archive files take a whole month): no overflow.
        let upper = Int64(limit) > maxId - firstId ? maxId : firstId + Int64(limit) - 1
        return firstId...upper
    }

    public func aggTrades(symbol: SimulatedSymbol, fromId: Int64?, start: Int64?, end: Int64?, limit: Int, now: Int64) -> [AggTrade] {
        guard let ids = aggTradeIds(symbol: symbol, fromId: fromId, start: start, end: end, limit: limit, now: now) else { return [] }
        return ids.map { aggTrade(symbol: symbol, id: $0) }
    }

    /// The candle opening at `openTime`, as Binance would serve it at `now`: nil if it does not exist (before
    /// listing, after delisting, during an outage, or in the future); its moving values if it is still open.
    public func kline(symbol: SimulatedSymbol, interval: KlineInterval, openTime: Int64, now: Int64) -> Kline? {
        guard openTime <= now, openTime >= interval.openTime(containing: symbol.listedAt) else { return nil }
        if let delisted = symbol.delistedAt, openTime >= delisted { return nil }
        if let delivered = symbol.deliveredAt, openTime >= delivered { return nil }
        if outages.contains(where: { $0.contains(openTime) }) { return nil }
        let closeTime = interval.closeTime(forOpenTime: openTime)
        var rng = SplitMix64(seed: Self.seed(symbol.name, interval.rawValue, openTime))
        let span = max(1, symbol.basePriceTicks / 50)
        let mid = symbol.basePriceTicks + Int64(rng.next() % UInt64(span)) - span / 2
        let up = Int64(rng.next() % UInt64(max(1, span / 4))) + 1
        let down = Int64(rng.next() % UInt64(max(1, span / 4))) + 1
        var high = mid + up, low = max(1, mid - down)
        var open = low + Int64(rng.next() % UInt64(high - low + 1))
        var close = low + Int64(rng.next() % UInt64(high - low + 1))
        let minutes = max(1, interval.nominalMilliseconds / 60_000)
        var volumeUnits = Int64(rng.next() % UInt64(max(1, symbol.baseVolumePerMinute))) * min(minutes, 1_000) + 1
        var volumeFraction = Int64(rng.next() % 100_000_000)
        var trades = Int64(rng.next() % 5_000) * min(minutes, 1_000) + 1
        if closeTime >= now {
            // Still open: the close follows the clock, and volume and trades grow as the candle runs.
            let elapsed = max(1, now - openTime + 1)
            let length = closeTime - openTime + 1
            var live = SplitMix64(seed: Self.seed(symbol.name, interval.rawValue, now / 1000))
            close = low + Int64(live.next() % UInt64(high - low + 1))
            high = max(open, close)
            low = min(open, close)
            open = min(max(open, low), high)
            volumeUnits = max(0, Int64(Int128(volumeUnits) * Int128(elapsed) / Int128(length)))
            volumeFraction = volumeFraction * (now / 1000 % 7 + 1) % 100_000_000
            trades = max(1, Int64(Int128(trades) * Int128(elapsed) / Int128(length)))
        }
        if let size = symbol.contractSize {
            // COIN-M: volume in whole contracts, and the base asset's volume (contracts x size / price) where USD-M has
            // the quote volume; the same for the taker's part.
            let contracts = volumeUnits, takerContracts = volumeUnits / 2
            func base(_ n: Int64) -> DecimalString {
                let units = Int128(n) * Int128(size) * 10_000_000_000_000_000 / Int128(max(1, close))  // 1e-8 units of the base asset
                return Self.decimal(Int64(clamping: units / 100_000_000), Int64(clamping: units % 100_000_000))
            }
            return Kline(openTime: openTime, open: Self.ticks(open), high: Self.ticks(high), low: Self.ticks(low), close: Self.ticks(close),
                         volume: DecimalString(unchecked: "\(contracts)"), closeTime: closeTime, quoteAssetVolume: base(contracts),
                         numberOfTrades: trades, takerBuyBaseAssetVolume: DecimalString(unchecked: "\(takerContracts)"),
                         takerBuyQuoteAssetVolume: base(takerContracts))
        }
        let takerUnits = volumeUnits / 2, takerFraction = volumeFraction / 3
        let quoteUnits = Int64(rng.next() % 900_000_000_000) + 1
        let quoteFraction = Int64(rng.next() % 100_000_000)
        return Kline(openTime: openTime, open: Self.ticks(open), high: Self.ticks(high), low: Self.ticks(low),
                     close: Self.ticks(close), volume: Self.decimal(volumeUnits, volumeFraction), closeTime: closeTime,
                     quoteAssetVolume: Self.decimal(quoteUnits, quoteFraction), numberOfTrades: trades,
                     takerBuyBaseAssetVolume: Self.decimal(takerUnits, takerFraction),
                     takerBuyQuoteAssetVolume: Self.decimal(quoteUnits / 2, quoteFraction / 3))
    }

    /// The candle of `series` opening at `openTime` (see `kline`, and `priceKline` for the computed series).
    public func candle(symbol: SimulatedSymbol, series: PriceSeries, interval: KlineInterval, openTime: Int64, now: Int64) -> Kline? {
        series == .trade ? kline(symbol: symbol, interval: interval, openTime: openTime, now: now)
            : priceKline(symbol: symbol, series: series, interval: interval, openTime: openTime, now: now).map(Kline.init(price:))
    }

    /// A mark, index or premium index candle: it exists when the trade candle does (listing, delisting, outages);
    /// mark and index prices move around the trade prices, the premium index around zero, often below it. Its count
    /// of basic data is one per second for mark and index prices and one per 5 seconds for the premium index (what
    /// Binance's own files show: 60 and 12 per minute), over the part of the candle that has run.
    public func priceKline(symbol: SimulatedSymbol, series: PriceSeries, interval: KlineInterval, openTime: Int64, now: Int64) -> PriceKline? {
        guard series != .trade, let trade = kline(symbol: symbol, interval: interval, openTime: openTime, now: now) else { return nil }
        var rng = SplitMix64(seed: Self.seed(symbol.name, series.rawValue + interval.rawValue, openTime))
        let closeTime = trade.closeTime
        let length = closeTime - openTime + 1
        let ran = min(length, max(0, now - openTime + 1))
        let count = ran / (series == .premium ? 5_000 : 1_000)
        let (base, span): (Int64, Int64) = series == .premium ? (0, 200_000) : (symbol.basePriceTicks, max(1, symbol.basePriceTicks / 50))
        let mid = base + Int64(rng.next() % UInt64(span)) - span / 2
        let up = Int64(rng.next() % UInt64(max(1, span / 4))), down = Int64(rng.next() % UInt64(max(1, span / 4)))
        var high = mid + up, low = mid - down
        if series != .premium { low = max(1, low) }
        let open = low + Int64(rng.next() % UInt64(high - low + 1))
        var close = low + Int64(rng.next() % UInt64(high - low + 1))
        if closeTime >= now {
            var live = SplitMix64(seed: Self.seed(symbol.name, series.rawValue + interval.rawValue, now / 1000))
            close = low + Int64(live.next() % UInt64(high - low + 1))
            high = max(open, close)
            low = min(open, close)
        }
        return PriceKline(openTime: openTime, open: Self.signedTicks(open), high: Self.signedTicks(high), low: Self.signedTicks(low),
                          close: Self.signedTicks(close), closeTime: closeTime, basicDataCount: count)
    }

    /// Candles of `series` with open time in [start, end], at most `limit`, oldest first.
    public func klines(symbol: SimulatedSymbol, series: PriceSeries = .trade, interval: KlineInterval, start: Int64, end: Int64, limit: Int,
                       now: Int64) -> [Kline] {
        var out: [Kline] = []
        var t = interval.openTime(containing: max(start, interval.openTime(containing: symbol.listedAt)))
        if t < start { t = interval.nextOpenTime(after: t) }
        let last = min(end, now)
        while t <= last, out.count < limit {
            if let k = candle(symbol: symbol, series: series, interval: interval, openTime: t, now: now) { out.append(k) }
            t = interval.nextOpenTime(after: t)
        }
        return out
    }

    /// The newest `limit` candles of `series` with open time <= end: walks back from `end`, over a delisting or a
    /// delivery and over outages at once, so a window that holds few candles is answered without walking every empty slot.
    public func latestKlines(symbol: SimulatedSymbol, series: PriceSeries = .trade, interval: KlineInterval, end: Int64, limit: Int,
                             now: Int64) -> [Kline] {
        var out: [Kline] = []
        var t = interval.openTime(containing: min(end, now))
        let first = interval.openTime(containing: symbol.listedAt)
        while t >= first, out.count < limit {
            if let stop = [symbol.deliveredAt, symbol.delistedAt].compactMap({ $0 }).min(), t >= stop {
                t = interval.openTime(containing: stop - 1)
                continue
            }
            if let outage = outages.first(where: { $0.contains(t) }) {
                t = interval.openTime(containing: outage.lowerBound - 1)
                continue
            }
            if let k = candle(symbol: symbol, series: series, interval: interval, openTime: t, now: now) { out.append(k) }
            t = interval.openTime(containing: t - 1)
        }
        return out.reversed()
    }

    /// Binance's trading metrics (open interest and trader ratios) begin here; there is nothing before.
    public static let metricsSince: Int64 = 1_638_316_800_000  // 2021-12-01

    /// The metrics row of `symbol` at the 5-minute time `time`, or nil when there is none (before listing or
    /// `metricsSince`, after delisting, during an outage, off the grid). Every 101st row lacks its taker ratio and every
    /// 211th its top traders' position ratio, as Binance's own data has gaps: REST answers no row there, a file an
    /// empty value.
    public func metric(symbol: SimulatedSymbol, time: Int64) -> FuturesMetric? {
        let step = FuturesMetrics.periodMilliseconds
        guard time % step == 0, time >= max(symbol.listedAt, Self.metricsSince) else { return nil }
        if let delisted = symbol.delistedAt, time >= delisted { return nil }
        if outages.contains(where: { $0.contains(time) }) { return nil }
        var rng = SplitMix64(seed: Self.seed(symbol.name, "metrics", time))
        let index = time / step
        let contracts = Int64(rng.next() % 5_000_000_000_000) + 100_000_000  // 1 .. 50,000 contracts, 1e-8 units
        let value = Int128(contracts) * Int128(symbol.basePriceTicks) / 100_000_000  // in 1e-8 units of the quote asset
        func ratio(_ rng: inout SplitMix64) -> DecimalString {
            let r = Int64(rng.next() % 30_000) + 2_000  // 0.2000 .. 3.2000
            return DecimalString(unchecked: "\(r / 10_000).\(String(format: "%04d", r % 10_000))")
        }
        let top = ratio(&rng), position = ratio(&rng), global = ratio(&rng), taker = ratio(&rng)
        return FuturesMetric(time: time, sumOpenInterest: Self.ticks(contracts),
                             sumOpenInterestValue: Self.decimal(Int64(clamping: value / 100_000_000), Int64(clamping: value % 100_000_000)),
                             topTraderAccountRatio: top, topTraderPositionRatio: index % 211 == 0 ? nil : position,
                             globalAccountRatio: global, takerBuySellRatio: index % 101 == 0 ? nil : taker)
    }

    /// Metrics rows with time in [start, end], published at `now` (a row once its 5 minutes have passed), oldest first.
    public func metrics(symbol: SimulatedSymbol, start: Int64, end: Int64, now: Int64) -> [FuturesMetric] {
        let step = FuturesMetrics.periodMilliseconds
        var t = max(start, Self.metricsSince)
        t = (t + step - 1) / step * step
        var out: [FuturesMetric] = []
        while t <= min(end, now - step) {
            if let row = metric(symbol: symbol, time: t) { out.append(row) }
            t += step
        }
        return out
    }

    /// `ticks` for a value that may be below zero (a premium index).
    static func signedTicks(_ value: Int64) -> DecimalString {
        value < 0 ? DecimalString(unchecked: "-" + ticks(-value).text) : ticks(value)
    }

    static func ticks(_ value: Int64) -> DecimalString {
        decimal(value / 100_000_000, value % 100_000_000)
    }

    static func decimal(_ units: Int64, _ fraction: Int64) -> DecimalString {
        let f = String(fraction)
        return DecimalString(unchecked: "\(units)." + String(repeating: "0", count: 8 - f.count) + f)
    }

    static func seed(_ a: String, _ b: String, _ c: Int64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in a.utf8 + [0] + b.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return h ^ UInt64(bitPattern: c)
    }
}

