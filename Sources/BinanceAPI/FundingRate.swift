import Foundation

/// One funding event of a USD-M perpetual: `GET /fapi/v1/fundingRate` returns
/// `[{"symbol":"BTCUSDT","fundingRate":"-0.03750000","fundingTime":1570608000000,"markPrice":"34287.54619963"}]`
/// (Binance API documentation, USD-M Futures "Get Funding Rate History"). Older records carry an empty mark price.
public struct FundingRate: Sendable, Equatable {
    public var fundingTime: Int64
    /// Signed: negative when shorts pay longs.
    public var fundingRate: DecimalString
    public var markPrice: DecimalString?

    public init(fundingTime: Int64, fundingRate: DecimalString, markPrice: DecimalString?) {
        self.fundingTime = fundingTime
        self.fundingRate = fundingRate
        self.markPrice = markPrice
    }

    /// The endpoint's rules: `limit` default 100, max 1000; and a limit of its own, "share 500/5min/IP rate limit
    /// with GET /fapi/v1/fundingInfo", on top of the request weight (weight 1 per request).
    public static let path = "/fapi/v1/fundingRate"
    public static let maxLimit = 1000
    public static let defaultLimit = 100
    public static let weight = 1
    public static let requestRule = RateLimitRule(limit: 500, windowMilliseconds: 300_000)

    public static func pathAndQuery(market: Market = .futures, symbol: Symbol, startTime: Int64, endTime: Int64, limit: Int) -> String {
        "\(market.fundingRatePath)?symbol=\(symbol.name)&startTime=\(startTime)&endTime=\(endTime)&limit=\(limit)"
    }

    struct Wire: Decodable {
        let symbol: String?
        let fundingTime: Int64
        let fundingRate: String
        let markPrice: String?
    }

    /// Parses and checks a page; a value that cannot be stored exactly is an error, and so is a row of another
    /// symbol than `symbol` (each row names its symbol).
    public static func parse(_ body: [UInt8], symbol: Symbol? = nil) throws(BinanceError) -> [FundingRate] {
        let wire: [Wire]
        do { wire = try JSONDecoder().decode([Wire].self, from: Data(body)) } catch {
            throw .malformedBody("fundingRate page could not be read: \(error)")
        }
        var out: [FundingRate] = []
        out.reserveCapacity(wire.count)
        for w in wire {
            if let symbol, let named = w.symbol, named != symbol.name {
                throw .malformedBody("funding rate at \(UTCCalendar.iso8601(w.fundingTime)) is for \(named), not the \(symbol.name) asked for")
            }
            do {
                let rate = try DecimalString(validating: w.fundingRate, signed: true)
                let mark = try w.markPrice.flatMap { $0.isEmpty ? nil : try DecimalString(validating: $0) }
                out.append(FundingRate(fundingTime: w.fundingTime, fundingRate: rate, markPrice: mark))
            } catch {
                throw .malformedBody("funding rate at \(UTCCalendar.iso8601(w.fundingTime)): \(error)")
            }
        }
        return out
    }

    /// A page is trusted whole or not at all (Binance, "Get Funding Rate History": rows with funding time in
    /// [startTime, endTime], ascending, at most `limit`): no row outside the range, none repeated or out of order,
    /// a mark price above zero where one is given.
    public static func check(_ page: [FundingRate], startTime: Int64, endTime: Int64, limit: Int) throws(BinanceError) {
        guard page.count <= limit else { throw .malformedBody("\(page.count) funding rates in a page asked for at most \(limit)") }
        var previous: Int64?
        for rate in page {
            let at = UTCCalendar.iso8601(rate.fundingTime)
            guard rate.fundingTime >= startTime, rate.fundingTime <= endTime else {
                throw .malformedBody("funding rate at \(at) is outside the requested \(UTCCalendar.iso8601(startTime)) .. \(UTCCalendar.iso8601(endTime))")
            }
            if let previous, rate.fundingTime <= previous {
                throw .malformedBody(rate.fundingTime == previous ? "funding rate at \(at) appears twice" : "funding rates out of order at \(at)")
            }
            if let mark = rate.markPrice, DecimalString.compare(mark, .zero) <= 0 {
                throw .malformedBody("funding rate at \(at) has mark price \(mark), not above zero")
            }
            previous = rate.fundingTime
        }
    }
}

/// One aggregate trade: `{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}`
/// (Binance API documentation, "Compressed/Aggregate Trades List").
public struct AggTrade: Sendable, Equatable {
    public var id: Int64
    public var price: DecimalString
    public var quantity: DecimalString
    public var firstTradeId: Int64
    public var lastTradeId: Int64
    public var time: Int64
    public var isBuyerMaker: Bool

    public init(id: Int64, price: DecimalString, quantity: DecimalString, firstTradeId: Int64, lastTradeId: Int64, time: Int64, isBuyerMaker: Bool) {
        self.id = id
        self.price = price
        self.quantity = quantity
        self.firstTradeId = firstTradeId
        self.lastTradeId = lastTradeId
        self.time = time
        self.isBuyerMaker = isBuyerMaker
    }

    /// "If startTime and endTime are sent, time between startTime and endTime must be less than 1 hour"
    /// (answered with -1127 otherwise); limit default 500, max 1000.
    public static let maxWindowMilliseconds: Int64 = 3_600_000
    public static let maxLimit = 1000

    struct Wire: Decodable {
        let a: Int64, p: String, q: String, f: Int64, l: Int64, T: Int64, m: Bool
    }

    public static func parse(_ body: [UInt8]) throws(BinanceError) -> [AggTrade] {
        let wire: [Wire]
        do { wire = try JSONDecoder().decode([Wire].self, from: Data(body)) } catch {
            throw .malformedBody("aggTrades page could not be read: \(error)")
        }
        var out: [AggTrade] = []
        out.reserveCapacity(wire.count)
        for w in wire {
            do {
                out.append(AggTrade(id: w.a, price: try DecimalString(validating: w.p), quantity: try DecimalString(validating: w.q),
                                    firstTradeId: w.f, lastTradeId: w.l, time: w.T, isBuyerMaker: w.m))
            } catch {
                throw .malformedBody("aggregate trade \(w.a): \(error)")
            }
        }
        return out
    }

    /// A page is trusted whole or not at all (Binance, "Compressed/Aggregate Trades List": ascending by id, from
    /// `fromId` on, at most `limit`): ids strictly ascending, each trade's `f <= l` and after the previous one's `l`,
    /// times never going backwards nor past `latest`, prices and quantities above zero.
    public static func check(_ page: [AggTrade], fromId: Int64?, limit: Int, latest: Int64) throws(BinanceError) {
        guard page.count <= limit else { throw .malformedBody("\(page.count) aggregate trades in a page asked for at most \(limit)") }
        var previous: AggTrade?
        for trade in page {
            if let fromId, trade.id < fromId { throw .malformedBody("aggregate trade \(trade.id) is before the requested fromId \(fromId)") }
            try check(trade, latest: latest)
            if let previous {
                let name = "aggregate trade \(trade.id)"
                guard trade.id > previous.id else { throw .malformedBody("\(name) after \(previous.id): ids out of order or repeated") }
                guard trade.firstTradeId > previous.lastTradeId else {
                    throw .malformedBody("\(name) starts at trade \(trade.firstTradeId), not after trade \(previous.lastTradeId) of the one before")
                }
                guard trade.time >= previous.time else {
                    throw .malformedBody("\(name) at \(UTCCalendar.iso8601(trade.time)) is before the one before it")
                }
            }
            previous = trade
        }
    }

    /// One trade's own rules (a file's rows are checked one at a time, tens of millions a month: nothing is allocated
    /// unless a rule is broken): first trade id not after the last, price and quantity above zero, not after `latest`.
    public static func check(_ trade: AggTrade, latest: Int64) throws(BinanceError) {
        guard trade.firstTradeId <= trade.lastTradeId else {
            throw .malformedBody("aggregate trade \(trade.id) has first trade id \(trade.firstTradeId) after its last \(trade.lastTradeId)")
        }
        guard DecimalString.compare(trade.price, .zero) > 0, DecimalString.compare(trade.quantity, .zero) > 0 else {
            throw .malformedBody("aggregate trade \(trade.id) has price \(trade.price) and quantity \(trade.quantity): both must be above zero")
        }
        guard trade.time <= latest else {
            throw .malformedBody("aggregate trade \(trade.id) is in the future (\(UTCCalendar.iso8601(trade.time)))")
        }
    }
}

extension Market {
    /// Path of the aggregate trades endpoint.
    public var aggTradesPath: String {
        switch self {
        case .futures: "/fapi/v1/aggTrades"
        case .spot: "/api/v3/aggTrades"
        case .coinm: "/dapi/v1/aggTrades"
        }
    }

    /// Weight of one aggregate trades request: futures 20 (COIN-M too), spot 4.
    public var aggTradesWeight: Int {
        switch self {
        case .futures, .coinm: 20
        case .spot: 4
        }
    }
}
