import BinanceAPI
import Testing

/// The trading data endpoints' answers (USD-M Futures, Market Data: "Open Interest Statistics" and the ratios) and the
/// notations a value may come in.
@Suite("Open interest and trader ratios: parsing and rules")
struct FuturesMetricsTests {
    static let symbol = try! Symbol(validating: "BTCUSDT")
    static let t0: Int64 = 1_583_127_900_000  // on the 5-minute grid, from Binance's example

    @Test("one value is one text in every notation: padding, spaces, exponents", arguments: [
        ("20403.63700000", "20403.637"), ("20403.637", "20403.637"), (" 1.8105 ", "1.8105"), ("1.2345e+00", "1.2345"),
        ("1.5e-05", "0.000015"), ("2E+3", "2000"), ("0.000", "0"), ("007.50", "7.5"), (".5", "0.5"), ("1e-18", "0.000000000000000001"),
    ])
    func normalizing(raw: String, plain: String) throws {
        #expect(try DecimalString(normalizing: raw).text == plain)
    }

    @Test("what a column cannot hold exactly, or is no number, is refused", arguments: ["-1", "1e-19", "NaN", "", "1e", "1.2.3", "1e99", "0x10"])
    func refusedNotations(raw: String) {
        #expect(throws: DecimalStringError.self) { try DecimalString(normalizing: raw) }
    }

    @Test("Binance's own examples parse: timestamps as strings or numbers; the five endpoints join into rows by time")
    func documentedExamples() throws {
        let interest = Array("""
            [{"symbol":"BTCUSDT","sumOpenInterest":"20403.63700000","sumOpenInterestValue":"150570784.07809979","timestamp":"\(Self.t0)"},
             {"symbol":"BTCUSDT","sumOpenInterest":"20401.36700000","sumOpenInterestValue":"149940752.14464448","timestamp":"\(Self.t0 + 300_000)"}]
            """.utf8)
        let taker = Array(#"[{"buySellRatio":"1.5586","buyVol":"387.3300","sellVol":"248.5030","timestamp":\#(Self.t0 + 300_000)}]"#.utf8)
        let a = try FuturesMetrics.Endpoint.openInterest.parse(interest, symbol: Self.symbol, startTime: Self.t0, endTime: Self.t0 + 300_000, limit: 500)
        let b = try FuturesMetrics.Endpoint.taker.parse(taker, symbol: Self.symbol, startTime: Self.t0, endTime: Self.t0 + 300_000, limit: 500)
        let rows = FuturesMetrics.merge([(.openInterest, a), (.taker, b)])
        #expect(rows.map(\.time) == [Self.t0, Self.t0 + 300_000])
        #expect(rows[0].sumOpenInterest?.text == "20403.637" && rows[0].takerBuySellRatio == nil)
        #expect(rows[1].takerBuySellRatio?.text == "1.5586" && rows[1].sumOpenInterestValue?.text == "149940752.14464448")
        #expect(FuturesMetrics.Endpoint.globalAccounts.pathAndQuery(symbol: Self.symbol, startTime: 1, endTime: 2, limit: 500)
            == "/futures/data/globalLongShortAccountRatio?symbol=BTCUSDT&period=5m&startTime=1&endTime=2&limit=500")
    }

    @Test("a page that breaks the endpoint's rules is refused whole", arguments: [
        #"[{"symbol":"ETHUSDT","longShortRatio":"1.8","timestamp":"1583127900000"}]"#,  // another symbol
        #"[{"symbol":"BTCUSDT","longShortRatio":"1.8","timestamp":"1583127960000"}]"#,  // off the 5-minute grid
        #"[{"symbol":"BTCUSDT","longShortRatio":"1.8","timestamp":"1583127600000"}]"#,  // before startTime
        #"[{"symbol":"BTCUSDT","longShortRatio":"1.8","timestamp":"1583128200000"},{"symbol":"BTCUSDT","longShortRatio":"1.8","timestamp":"1583127900000"}]"#,
        #"[{"symbol":"BTCUSDT","longShortRatio":1.8,"timestamp":"1583127900000"}]"#,  // a float, not a decimal string
        #"[{"symbol":"BTCUSDT","longShortRatio":"-1.8","timestamp":"1583127900000"}]"#,
        #"[{"symbol":"BTCUSDT","longShortRatio":"1.8"}]"#,
        #"{"code":-1130,"msg":"parameter 'startTime' is invalid."}"#,
    ])
    func refusedPages(body: String) {
        #expect(throws: BinanceError.self) {
            try FuturesMetrics.Endpoint.topTraderAccounts.parse(Array(body.utf8), symbol: Self.symbol, startTime: Self.t0, endTime: Self.t0 + 3_600_000, limit: 500)
        }
    }

    @Test("REST is never asked for more than its 30 days: the floor is on the grid, inside the window, with a margin")
    func restFloor() {
        let now: Int64 = 1_709_294_730_000
        let floor = FuturesMetrics.restFloor(now: now)
        #expect(floor % 300_000 == 0)
        #expect(floor >= now - FuturesMetrics.restHistoryMilliseconds + FuturesMetrics.restHistoryMargin)
        #expect(floor < now - FuturesMetrics.restHistoryMilliseconds + FuturesMetrics.restHistoryMargin + 300_000)
    }
}
