import BinanceAPI
import Testing

@Suite("Intervals, markets and weights", .timeLimit(.minutes(2)))
struct IntervalAndWeightTests {
    @Test("every Binance interval parses by its exact name and names its table", arguments: [
        ("1s", "s1"), ("1m", "m1"), ("3m", "m3"), ("5m", "m5"), ("15m", "m15"), ("30m", "m30"), ("1h", "h1"), ("2h", "h2"),
        ("4h", "h4"), ("6h", "h6"), ("8h", "h8"), ("12h", "h12"), ("1d", "d1"), ("3d", "d3"), ("1w", "w1"), ("1M", "mo1"),
    ])
    func tableNames(name: String, suffix: String) throws {
        let interval = try #require(KlineInterval(binanceName: name))
        #expect(interval.tableSuffix == suffix)
        #expect(interval.rawValue == name)
    }

    @Test("interval names are case-sensitive: 1M is a month, 1m a minute; unknown names are rejected")
    func caseSensitive() {
        #expect(KlineInterval(binanceName: "1M") == .mo1)
        #expect(KlineInterval(binanceName: "1m") == .m1)
        #expect(KlineInterval(binanceName: "1H") == nil)
        #expect(KlineInterval(binanceName: "7m") == nil)
    }

    @Test("1s is offered on spot only")
    func oneSecondSpotOnly() {
        #expect(KlineInterval.s1.isAvailable(on: .spot))
        #expect(!KlineInterval.s1.isAvailable(on: .futures))
    }

    @Test("futures and spot tables never share a name")
    func tablePrefixes() {
        #expect(Market.futures.tablePrefix + KlineInterval.m1.tableSuffix == "klines_m1")
        #expect(Market.spot.tablePrefix + KlineInterval.m1.tableSuffix == "spot_klines_m1")
    }

    @Test("close time is the next open time minus 1 ms, weeks open on Monday, months on the 1st (UTC)")
    func boundaries() throws {
        let jan15 = try #require(UTCCalendar.parse("2024-01-15T13:45:10"))
        #expect(KlineInterval.h1.openTime(containing: jan15) == UTCCalendar.parse("2024-01-15T13:00")!)
        #expect(KlineInterval.h1.closeTime(forOpenTime: UTCCalendar.parse("2024-01-15T13:00")!) == UTCCalendar.parse("2024-01-15T14:00")! - 1)
        // 2024-01-15 is a Monday.
        #expect(KlineInterval.w1.openTime(containing: jan15) == UTCCalendar.parse("2024-01-15")!)
        #expect(KlineInterval.w1.openTime(containing: UTCCalendar.parse("2024-01-14T23:59")!) == UTCCalendar.parse("2024-01-08")!)
        #expect(KlineInterval.mo1.openTime(containing: jan15) == UTCCalendar.parse("2024-01-01")!)
        #expect(KlineInterval.mo1.closeTime(forOpenTime: UTCCalendar.parse("2024-02-01")!) == UTCCalendar.parse("2024-03-01")! - 1)
        #expect(KlineInterval.mo1.nextOpenTime(after: UTCCalendar.parse("2024-12-01")!) == UTCCalendar.parse("2025-01-01")!)
    }

    @Test("futures klines weigh by limit as documented: [1,100) 1, [100,500) 2, [500,1000] 5, >1000 10", arguments: [
        (1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10), (1500, 10),
    ])
    func futuresWeights(limit: Int, weight: Int) {
        #expect(Market.futures.klinesWeight(limit: limit) == weight)
    }

    @Test("spot klines weigh 2 whatever the limit")
    func spotWeights() {
        #expect([1, 500, 1000].map { Market.spot.klinesWeight(limit: $0) } == [2, 2, 2])
    }

    @Test("the default page size buys the most klines per weight: futures 499, spot 1000")
    func bestPage() {
        #expect(Market.futures.mostKlinesPerWeightLimit == 499)
        #expect(Market.spot.mostKlinesPerWeightLimit == 1000)
    }

    @Test("a klines request carries symbol, interval, times and limit, and its weight")
    func request() throws {
        let r = KlinesRequest(market: .futures, symbol: try Symbol(validating: "BTCUSDT"), interval: .m1,
                              startTime: 1000, endTime: 2000, limit: 499)
        #expect(r.pathAndQuery == "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=1000&endTime=2000&limit=499")
        #expect(r.weight == 2)
    }

    @Test("used-weight headers are read for any window; Retry-After in seconds")
    func headers() {
        let h = WeightHeaders(headers: ["x-mbx-used-weight-1m": "1234", "x-mbx-used-weight-10s": "7", "retry-after": "42",
                                        "x-mbx-used-weight": "1234"])
        #expect(h.usedWeight == [60_000: 1234, 10_000: 7])
        #expect(h.retryAfterSeconds == 42)
        #expect(RateLimitRule(limit: 2400, windowMilliseconds: 60_000).usedWeightHeader == "x-mbx-used-weight-1m")
        #expect(RateLimitRule(limit: 10, windowMilliseconds: 2000).usedWeightHeader == "x-mbx-used-weight-2s")
    }
}

@Suite("Symbols and dates", .timeLimit(.minutes(2)))
struct SymbolAndDateTests {
    @Test("symbols must match Binance's pattern before reaching a URL or SQL", arguments: [
        "btcusdt", "BTC USDT", "BTC'; DROP TABLE klines_m1; --", "", "ABCDEFGHIJKLMNOPQRSTU", "BTC/USDT",
    ])
    func rejectsMalformed(raw: String) {
        #expect(throws: SymbolError.self) { try Symbol(validating: raw) }
    }

    @Test("valid symbols and lists parse, trimmed and without repeats")
    func parsesLists() throws {
        let list = try Symbol.parseList(" BTCUSDT, ETHUSDT,BTCUSDT ,1000PEPEUSDT")
        #expect(list.map(\.name) == ["BTCUSDT", "ETHUSDT", "1000PEPEUSDT"])
    }

    @Test("UTC dates parse and print", arguments: [
        ("2024-01-01", Int64(1_704_067_200_000)), ("2024-01-01T00:00:01", 1_704_067_201_000),
        ("2024-02-29 12:00", 1_709_208_000_000), ("1704067200000", 1_704_067_200_000),
    ])
    func dates(text: String, ms: Int64) {
        #expect(UTCCalendar.parse(text) == ms)
    }

    @Test("impossible dates are rejected", arguments: ["2023-02-29", "2024-13-01", "2024-1-1", "yesterday", "2024-01-01T25:00"])
    func badDates(text: String) {
        #expect(UTCCalendar.parse(text) == nil)
    }

    @Test("ISO-8601 output round-trips")
    func iso() {
        #expect(UTCCalendar.iso8601(1_709_208_000_123) == "2024-02-29T12:00:00.123Z")
    }
}
