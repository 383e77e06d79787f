import BinanceAPI
import Testing

/// Mark, index and premium index candles as Binance's USD-M REST API serves them (Market Data: "Mark Price
/// Kline/Candlestick Data", "Index Price Kline/Candlestick Data", "Premium Index Kline Data").
@Suite("Price series: mark, index and premium index klines")
struct PriceSeriesTests {
    @Test("each series asks its own endpoint; the index by pair, the others by symbol; weights by limit as the trade klines")
    func requests() throws {
        let symbol = try Symbol(validating: "BTCUSDT")
        func request(_ series: PriceSeries, limit: Int) -> KlinesRequest {
            KlinesRequest(market: .futures, symbol: symbol, interval: .h1, startTime: 1_704_067_200_000, endTime: nil, limit: limit, series: series)
        }
        #expect(request(.mark, limit: 499).pathAndQuery == "/fapi/v1/markPriceKlines?symbol=BTCUSDT&interval=1h&startTime=1704067200000&limit=499")
        #expect(request(.index, limit: 499).pathAndQuery == "/fapi/v1/indexPriceKlines?pair=BTCUSDT&interval=1h&startTime=1704067200000&limit=499")
        #expect(request(.premium, limit: 499).pathAndQuery.hasPrefix("/fapi/v1/premiumIndexKlines?symbol=BTCUSDT&"))
        #expect([1, 99, 100, 499, 500, 1000, 1001, 1500].map { request(.mark, limit: $0).weight } == [1, 1, 2, 2, 5, 5, 10, 10])
        #expect(request(.trade, limit: 499).pathAndQuery.hasPrefix("/fapi/v1/klines?symbol=BTCUSDT&"))
        #expect(PriceSeries.allCases.map { $0.isAvailable(on: .spot) } == [true, false, false, false])
    }

    @Test("Binance's own example parses: the ignored fields (one is \"0 \" with a space) are skipped, field 8 is the count")
    func documentedExample() throws {
        let body = Array("""
            [[1591256460000,"9653.29201333","9654.56401333","9653.07367333","9653.07367333","0 ",1591256519999,"0",60,"0","0","0"]]
            """.utf8)
        let candles = try KlinePageParser().parsePrices(body, series: .mark)
        #expect(candles == [PriceKline(openTime: 1_591_256_460_000, open: DecimalString(unchecked: "9653.29201333"),
                                       high: DecimalString(unchecked: "9654.56401333"), low: DecimalString(unchecked: "9653.07367333"),
                                       close: DecimalString(unchecked: "9653.07367333"), closeTime: 1_591_256_519_999, basicDataCount: 60)])
        try candles[0].validate(interval: .m1, series: .mark)
        // Carried through the pipeline as a Kline, and back, unchanged; checked as a price candle, not a trade one.
        let carried = Kline(price: candles[0])
        #expect(PriceKline(carriedBy: carried) == candles[0])
        try carried.validate(interval: .m1, series: .mark)
    }

    @Test("a premium index may be negative; a mark price may not, nor a low above a high")
    func signs() throws {
        let premium = Array(#"[[1591256460000,"-0.00031200","0.00010000","-0.00040000","-0.00012000","0",1591256519999,"0",12,"0","0","0"]]"#.utf8)
        let parsed = try KlinePageParser().parsePrices(premium, series: .premium)
        try parsed[0].validate(interval: .m1, series: .premium)
        #expect(throws: KlineParseError.self) { try KlinePageParser().parsePrices(premium, series: .mark) }
        var wrong = parsed[0]
        wrong.low = DecimalString(unchecked: "0.0002")
        #expect(throws: PriceKlineValidationError.self) { try wrong.validate(interval: .m1, series: .premium) }
        #expect(throws: KlineValidationError.self) { try Kline(price: wrong).validate(interval: .m1, series: .premium) }
        // A negative premium is no fault of a premium candle, but would be of a trade candle.
        #expect(throws: KlineValidationError.self) { try Kline(price: parsed[0]).validate(interval: .m1, series: .trade) }
        try Kline(price: parsed[0]).validate(interval: .m1, series: .premium)
        #expect(DecimalString.compareSigned(DecimalString(unchecked: "-0.5"), DecimalString(unchecked: "0.1")) < 0)
        #expect(DecimalString.compareSigned(DecimalString(unchecked: "-0.5"), DecimalString(unchecked: "-0.1")) < 0)
        #expect(DecimalString.compareSigned(DecimalString(unchecked: "-0"), DecimalString(unchecked: "0.000")) == 0)
    }

    @Test("a page that is not the documented shape is refused with where and why", arguments: [
        #"[[1591256460000,"1","2","0.5","1.5","0",1591256519999,"0","sixty","0","0","0"]]"#,
        #"[[1591256460000,"1","2","0.5","1.5","0"]]"#,
        #"[[1591256460000,"1","2","0.5","x","0",1591256519999,"0",60]]"#,
        #"[[1591256460000,"1","2","0.5","1.5","0",1591256519999,"0",60]] trailing"#,
    ])
    func malformed(body: String) {
        #expect(throws: KlineParseError.self) { try KlinePageParser().parsePrices(Array(body.utf8), series: .index) }
    }
}
