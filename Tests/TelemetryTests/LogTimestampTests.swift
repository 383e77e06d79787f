import Foundation
import HTTPTransport
import Telemetry
import Testing

/// Log timestamps and URL hosts are computed without Foundation's ICU-backed types: the same answers.
@Suite("timestamps and hosts without ICU")
struct LogTimestampTests {
    @Test("log timestamps equal ISO8601DateFormatter's, across leap days, century rules and before 1970")
    func timestamps() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var ms: Int64 = -2_208_988_800_000  // 1900-01-01
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
            #expect(LogLineHandler.timestamp(milliseconds: ms) == expected, "\(ms)")
            ms += Int64.random(in: 1...120 * 86_400_000, using: &rng)
        }
        #expect(LogLineHandler.timestamp(milliseconds: 951_782_400_123) == "2000-02-29T00:00:00.123Z")
        #expect(LogLineHandler.timestamp(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(LogLineHandler.timestamp(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
    }

    @Test("a URL's host: userinfo, port, path, IPv6 brackets and case; nothing without a scheme or with a non-ASCII host")
    func hosts() {
        #expect(URLParts.host("wss://fstream.binance.com/market") == "fstream.binance.com")
        #expect(URLParts.host("https://user:p%40ss@API.Example.com:8443/x?y#z") == "api.example.com")
        #expect(URLParts.host("ws://[::1]:9443/stream") == "::1")
        #expect(URLParts.host("http://127.0.0.1:8080") == "127.0.0.1")
        #expect(URLParts.host("ws://") == nil)
        #expect(URLParts.host("ws://:443/x") == nil)
        #expect(URLParts.host("fstream.binance.com") == nil)
        #expect(URLParts.host("ws://bücher.example/") == nil)
        #expect(URLParts.port("https://user:pw@api.example.com:8443/x") == 8443)
        #expect(URLParts.port("http://127.0.0.1/x") == 80 && URLParts.port("wss://fstream.binance.com") == 443)
        #expect(URLParts.port("ws://[::1]:9443/stream") == 9443 && URLParts.port("ws://[::1]/") == 80)
    }
}
