import BinanceAPI
import Testing

@Suite("market stream events")
struct StreamEventTests {
    /// Binance's own example ("Kline/Candlestick Streams"), wrapped as a combined stream, with its low made 0.0010: the
    /// documented low (0.0015) is above its open, which a candle cannot be (and which the checks refuse, as for REST).
    static let documented = #"{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0010","v":"1000","n":100,"x":false,"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}}"#

    @Test("Binance's documented kline event parses: the candle so far, open (x false), exact decimals")
    func documentedKline() throws {
        let (stream, event) = try StreamEventParser().parse(Self.documented)
        #expect(stream == "bnbbtc@kline_1m")
        guard case .kline(let symbol, let interval, let kline, let final, let eventTime) = event else {
            Issue.record("not a kline: \(event)")
            return
        }
        #expect(symbol == "BNBBTC" && interval == .m1 && !final && eventTime == 1_672_515_782_136)
        #expect(kline.openTime == 1_672_515_780_000 && kline.closeTime == 1_672_515_839_999 && kline.numberOfTrades == 100)
        #expect(kline.open.text == "0.0010" && kline.high.text == "0.0025" && kline.takerBuyQuoteAssetVolume.text == "0.500")
    }

    @Test("an aggregate trade, spot's serverShutdown and a control answer")
    func otherEvents() throws {
        let trade = #"{"stream":"bnbusdt@aggTrade","data":{"e":"aggTrade","E":123456789,"s":"BNBUSDT","a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}}"#
        guard case .aggTrade(_, let t, _) = try StreamEventParser().parse(trade).event else { Issue.record("not a trade"); return }
        #expect(t.id == 5_933_014 && t.firstTradeId == 100 && t.lastTradeId == 105 && t.isBuyerMaker && t.price.text == "0.001")
        #expect(try StreamEventParser().parse(#"{"e":"serverShutdown","E":1700000000000}"#).event == .serverShutdown(eventTime: 1_700_000_000_000))
        #expect(try StreamEventParser().parse(#"{"result":null,"id":1}"#).event == .ignored)
    }

    @Test("a message that breaks the documented shape is refused, never stored", arguments: [
        "not json",
        #"{"stream":"ethusdt@kline_1m","data":{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","o":"1","c":"1","h":"1","l":"1","v":"1","n":1,"x":true,"q":"1","V":"0","Q":"0"}}}"#,
        #"{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","o":"1e3","c":"1","h":"1","l":"1","v":"1","n":1,"x":true,"q":"1","V":"0","Q":"0"}}}"#,
        #"{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m","o":"1","c":"1","h":"0.5","l":"1","v":"1","n":1,"x":true,"q":"1","V":"0","Q":"0"}}}"#,
        #"{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"7m","o":"1","c":"1","h":"1","l":"1","v":"1","n":1,"x":true,"q":"1","V":"0","Q":"0"}}}"#,
        #"{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1672515780000,"s":"BNBBTC","i":"1m"}}}"#,
        String(repeating: " ", count: 70_000) + "{}",
    ])
    func refused(_ text: String) {
        #expect(throws: StreamEventError.self) { try StreamEventParser().parse(text) }
    }

    @Test("stream names are lowercase; a base URL keeps its path prefix")
    func names() throws {
        let btc = try Symbol(validating: "BTCUSDT")
        #expect(MarketStream.kline(btc, .m1).name == "btcusdt@kline_1m" && MarketStream.aggTrade(btc).name == "btcusdt@aggTrade")
        #expect(MarketStream.url(base: "wss://fstream.binance.com/market/", streams: [.kline(btc, .m1), .kline(btc, .h1)])
                == "wss://fstream.binance.com/market/stream?streams=btcusdt@kline_1m/btcusdt@kline_1h")
    }
}
