import ArgumentParser
import BinanceAPI
import BinanceSimulator
import BuildInfo
import Foundation

/// `binance-sim`: a Binance-compatible REST server on loopback, for tests, the demo and benchmarks.
@main
struct BinanceSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "binance-sim",
        abstract: "A Binance-compatible REST server (futures /fapi/v1, spot /api/v3) following Binance's documented rules.",
        discussion: """
        Serves deterministic klines for BTCUSDT, ETHUSDT, SOLUSDT, BNBUSDT, XRPUSDT, PEPEUSDT (meme-coin volumes) and \
        NEWUSDT (listed three days ago), with an open last candle. Weights, X-MBX-USED-WEIGHT headers, 429 with \
        Retry-After, 418 bans and error codes follow the Binance API documentation. GET /sim/stats returns counters.
        """,
        version: BuildInfo.version)

    @Option(help: "Port to listen on (0 picks a free one; the chosen port is printed).")
    var port: UInt16 = 8090

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Request-weight limit per window, both markets (Binance: futures 2400, spot 6000 per minute).")
    var weightLimit: Int?

    @Option(help: "Length of the weight window in seconds (Binance: 60).")
    var windowSeconds: Double = 60

    @Option(help: "Requests ignoring a 429's Retry-After before the IP is banned with 418.")
    var requestsBeforeBan = 5

    @Option(help: "Length of the first ban in seconds (Binance: 2 minutes, doubling for repeat offenders).")
    var banSeconds: Double = 120

    @Option(name: .customLong("fault"), help: """
        Fault on klines requests: KIND[:every=N][:count=N][:ms=N][:retry=S], KIND one of \
        \(FaultKind.allCases.map(\.rawValue).joined(separator: ", ")). Repeatable.
        """)
    var faults: [String] = []

    @Option(help: "Exchange outage with no candles: START..END in Unix ms. Repeatable.")
    var outage: [String] = []

    @Option(name: .customLong("archive-fault"), help: """
        Fault of one archive file (data.binance.vision tree under /data/): NAME=KIND, e.g.         BTCUSDT-1m-2024-01.zip=wrong-checksum; KIND one of missing, wrong-checksum, damaged[:N], incomplete:ROWS, disordered, entry:NAME, runaway-line:BYTES, bad-crc, drop:BYTE[:N] (the first N downloads reaching that byte of the zip are cut there; a Range request resumes), differs[:ROWS] (the first ROWS rows differ from REST, the CHECKSUM matching). Repeatable.
        """)
    var archiveFaults: [String] = []

    @Option(name: .customLong("reupload"), help: """
        NAME.zip@MS: at Unix time MS, the file is uploaded again with correct rows (its --archive-fault gone), a new \
        Last-Modified and the ETag of its new bytes, as Binance replaces a published file. Repeatable.
        """)
    var reuploads: [String] = []

    @Option(name: .customLong("extra-symbols"), help: "Also list BENCH000USDT ... (N symbols, listed since 2019), for benchmarks.")
    var extraSymbols = 0

    @Option(name: .customLong("stream-lifetime"), help: "Seconds a stream connection lives before the server closes it (Binance: 86400, its 24-hour cut; compress it to see a follower renew).")
    var streamLifetime: Double?

    @Option(name: .customLong("stream-fault"), help: """
        Stream fault: KIND[:N][@FIRST..END] with KIND one of refuse:STATUS, drop:MESSAGES, silent:MESSAGES, final-twice, \
        final-late:MS, final-never, final-lies, server-shutdown:MESSAGES, trades-skipped:EVERY, trades-twice; @0..1 limits it to \
        the first connection. Repeatable.
        """)
    var streamFaults: [String] = []

    @Option(name: .customLong("trades-per-minute"), help: """
        Aggregate trades per minute of one symbol: SYMBOL=N (default 6, one every 10 s). 25000 makes a month of about a \
        billion bytes zipped, as a busy symbol's real monthly aggTrades file. Repeatable.
        """)
    var tradesPerMinute: [String] = []

    @Option(name: .customLong("archive-cache"), help: "Folder where archive files are written once and kept between runs (default: a temporary folder removed on exit).")
    var archiveCache: String?

    @Flag(name: .customLong("cache-pages"), help: "Keep historical klines answers once computed (benchmarks: measure the client, not the simulator).")
    var cachePages = false

    nonisolated(unsafe) static var signalSources: [any DispatchSourceSignal] = []

    func run() async throws {
        var configuration = BinanceSimulator.Configuration()
        configuration.host = host
        configuration.port = port
        if let weightLimit {
            guard weightLimit > 0, windowSeconds > 0 else {
                throw ValidationError("--weight-limit and --window-seconds must be positive")
            }
            configuration.setWeightLimit(weightLimit, windowSeconds: windowSeconds)
        } else if windowSeconds != 60 {
            configuration.futuresRule.windowMilliseconds = Int64(windowSeconds * 1000)
            configuration.spotRule.windowMilliseconds = Int64(windowSeconds * 1000)
        }
        configuration.requestsBeforeBan = requestsBeforeBan
        configuration.extraSymbols = extraSymbols
        configuration.cachePages = cachePages
        configuration.archiveCacheFolder = archiveCache
        for text in tradesPerMinute {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let pace = Int64(parts[1]), (1...6_000_000).contains(pace) else {
                throw ValidationError("--trades-per-minute '\(text)' is not SYMBOL=N with N from 1 to 6000000")
            }
            configuration.tradesPerMinute[parts[0]] = pace
        }
        configuration.firstBanMilliseconds = Int64(banSeconds * 1000)
        configuration.faults = try faults.map { text in
            guard let plan = FaultPlan(parsing: text) else {
                throw ValidationError("--fault '\(text)' is not KIND[:every=N][:count=N][:ms=N] with KIND one of "
                                      + FaultKind.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return plan
        }
        let simulator = BinanceSimulator(configuration: configuration)
        let outages = try outage.map { text -> Range<Int64> in
            let parts = text.components(separatedBy: "..")
            guard parts.count == 2, let a = Int64(parts[0]), let b = Int64(parts[1]), a < b else {
                throw ValidationError("--outage '\(text)' is not START..END in Unix milliseconds with START < END")
            }
            return a..<b
        }
        await simulator.setOutages(outages)
        var faultsByFile: [String: ArchiveFault] = [:]
        for text in archiveFaults {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0].hasSuffix(".zip"), let fault = ArchiveFault(parsing: parts[1]) else {
                throw ValidationError("--archive-fault '\(text)' is not NAME.zip=KIND with KIND one of missing, wrong-checksum, damaged[:N], incomplete:ROWS, disordered, entry:NAME, runaway-line:BYTES, bad-crc, drop:BYTE[:N], differs[:ROWS]")
            }
            faultsByFile[parts[0]] = fault
        }
        await simulator.setArchiveFaults(faultsByFile)
        for text in reuploads {
            let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0].hasSuffix(".zip"), let at = Int64(parts[1]), at >= 0 else {
                throw ValidationError("--reupload '\(text)' is not NAME.zip@MS with MS a Unix time in milliseconds")
            }
            await simulator.scheduleReupload(parts[0], at: at)
        }
        if let streamLifetime {
            guard streamLifetime > 0 else { throw ValidationError("--stream-lifetime must be a positive number of seconds") }
            for market in Market.allCases {
                var rules = StreamRules.of(market)
                rules.lifetime = Int64(streamLifetime * 1000)
                await simulator.setStreamRules(rules, for: market)
            }
        }
        await simulator.setStreamFaults(try streamFaults.map { text in
            guard let plan = StreamFaultPlan(parsing: text) else {
                throw ValidationError("--stream-fault '\(text)' is not KIND[:N][@FIRST..END] (see --help)")
            }
            return plan
        })
        // SIGTERM or SIGINT: stop, which removes the simulator's own archive folder (a gigabyte file may be in it).
        for signal in [SIGTERM, SIGINT] {
            Foundation.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler {
                Task {
                    await simulator.stop()
                    Foundation.exit(0)
                }
            }
            source.resume()
            Self.signalSources.append(source)
        }
        let bound = try await simulator.start()
        // Scripts wait for this line to learn the port.
        FileHandle.standardOutput.write(Data("binance-sim listening on http://\(host):\(bound)\n".utf8))
        try await simulator.run()
    }
}

