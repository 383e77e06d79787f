import BinanceAPI
import Testing

@Suite("Decimal values and kline pages", .timeLimit(.minutes(2)))
struct ParsingTests {
    static let row = #"[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499040059999,"2434.19055334",308,"1756.87402397","28.46694368","0"]"#

    @Test("a page parses into exact decimal strings, never rounded")
    func parsesPage() throws {
        let klines = try KlinePageParser().parse(Array("[\(Self.row)]".utf8))
        #expect(klines.count == 1)
        let k = klines[0]
        #expect(k.openTime == 1_499_040_000_000)
        #expect(k.open.text == "0.01634790")
        #expect(k.high.text == "0.80000000")
        #expect(k.volume.text == "148976.11427815")
        #expect(k.closeTime == 1_499_040_059_999)
        #expect(k.numberOfTrades == 308)
        #expect(k.takerBuyQuoteAssetVolume.text == "28.46694368")
    }

    @Test("an empty page and whitespace are fine")
    func emptyPage() throws {
        #expect(try KlinePageParser().parse(Array(" [ ] ".utf8)).isEmpty)
    }

    @Test("malformed bodies are rejected with where and why", arguments: [
        "", "[", "<html>502 Bad Gateway</html>", #"{"code":-1121,"msg":"Invalid symbol."}"#,
        "[\(row.dropLast(20))", #"[[1,"abc","1","1","1","1",2,"1",1,"1","1","0"]]"#,
        #"[[1,"-1.0","1","1","1","1",2,"1",1,"1","1","0"]]"#, "[\(row)] trailing",
    ])
    func rejectsMalformed(body: String) {
        #expect(throws: KlineParseError.self) { try KlinePageParser().parse(Array(body.utf8)) }
    }

    @Test("decimals that do not fit DECIMAL(38,18) exactly are refused, not rounded", arguments: [
        "1.1234567890123456789", "123456789012345678901", "1.", ".5", "1e5", "NaN",
    ])
    func rejectsDecimals(text: String) {
        #expect(throws: DecimalStringError.self) { try DecimalString(validating: text) }
    }

    @Test("huge meme-coin volumes and tiny prices fit")
    func acceptsExtremes() throws {
        _ = try DecimalString(validating: "98765432109876543210.12345678")
        _ = try DecimalString(validating: "0.00000001")
        _ = try DecimalString(validating: "00012.5")
    }

    @Test("decimal comparison is exact and ignores notation")
    func compare() {
        func d(_ s: String) -> DecimalString { DecimalString(unchecked: s) }
        #expect(DecimalString.compare(d("0.1"), d("0.100000")) == 0)
        #expect(DecimalString.compare(d("10"), d("9.99999999")) == 1)
        #expect(DecimalString.compare(d("0.00000001"), d("0.00000002")) == -1)
        #expect(DecimalString.compare(d("007"), d("7.0")) == 0)
    }

    @Test("a kline outside its own range is reported with its values")
    func validation() throws {
        var k = try KlinePageParser().parse(Array("[\(Self.row)]".utf8))[0]
        try k.validate(interval: .m1)
        k.low = DecimalString(unchecked: "0.02")
        let error = #expect(throws: KlineValidationError.self) { try k.validate(interval: .m1) }
        #expect(error?.description.contains("open 0.01634790 is below low 0.02") == true)
        #expect(error?.description.contains("high=0.80000000") == true)
    }

    @Test("a close time other than open + interval - 1 ms is reported")
    func closeTimeValidation() throws {
        let k = try KlinePageParser().parse(Array("[\(Self.row)]".utf8))[0]
        let error = #expect(throws: KlineValidationError.self) { try k.validate(interval: .m5) }
        #expect(error?.reason.contains("close time") == true)
    }
}
