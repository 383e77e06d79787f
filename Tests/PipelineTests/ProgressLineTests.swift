@testable import ExtractorCLI
import Testing

@Suite("the terminal progress line")
struct ProgressLineTests {
    @Test("units, candles, rate, time left; archive files and the last one once a file was read")
    func line() {
        let rest = TerminalProgress.line(units: 1, of: 4, candles: 5_000, planned: 20_000, milliseconds: 2_000, files: 0, lastFile: nil)
        #expect(rest == "1/4 units done | 5000/20000 candles (25%) | 2500/s | ~6 s left")
        let files = TerminalProgress.line(units: 0, of: 2, candles: 44_640, planned: 89_280, milliseconds: 1_000, files: 1,
                                          lastFile: "BTCUSDT-1m-2024-01.zip")
        #expect(files == "0/2 units done | 44640/89280 candles (50%) | 44640/s | ~1 s left | 1 archive files, last BTCUSDT-1m-2024-01.zip")
    }
}
