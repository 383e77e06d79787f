import ArgumentParser
import BinanceAPI
import BinanceStreams
import Foundation
import HTTPTransport
import HealthEndpoint
import Logging
import Pipeline
import StoreKit
import Telemetry
import Tracing

/// `binance-extractor follow`.
struct FollowCommand: ExtractorCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow",
        abstract: "Keep kline (and aggregate-trade) tables current from Binance's WebSocket streams, about a second after each close.",
        discussion: """
        A long-running process: each symbol x timeframe catches up from its last stored candle (REST, or the archives \
        when far behind) while its stream is already connected, then writes each closed candle when its final event \
        arrives. A final event that never comes is fetched from REST; every candle written from the stream is confirmed \
        by REST within 30 s of its close (one request per unit covers every candle since its last confirmation) and \
        corrected where REST differs. A dropped connection is reconnected with backoff and caught up, so no candle is \
        lost. SIGTERM commits what has arrived and exits 0. WebSocket base URL: --ws-url, or BINANCE_WS_URL (spot), \
        BINANCE_FUTURES_WS_URL (USD-M), BINANCE_COINM_WS_URL (COIN-M); a path prefix is kept.
        """)

    @Option(help: ArgumentHelp("Comma-separated Binance intervals: 1s (spot), 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M. Required.", valueName: "list"))
    var timeframes: String?

    @Flag(name: .customLong("trades"), help: "Also keep the aggregate-trade table current from <symbol>@aggTrade streams: every id exactly once, a jump in ids filled from REST by fromId.")
    var trades = false

    @Option(name: .customLong("ws-url"), help: ArgumentHelp("WebSocket base URL (ws:// or wss://). Env: BINANCE_WS_URL, BINANCE_FUTURES_WS_URL or BINANCE_COINM_WS_URL by --market. Default: Binance's.", valueName: "url"))
    var wsURL: String?

    @Option(name: .customLong("lookback-hours"), help: "Where a unit with nothing stored starts. Env: LOOKBACK_HOURS. Default: 24.")
    var lookbackHours: Int?

    @Option(name: .customLong("health-port"), help: ArgumentHelp("Serve GET /healthz and /readyz (ready: every unit streams and has caught up) on this port. Env: HEALTH_PORT. Default: none.", valueName: "port"))
    var healthPort: Int?

    @Option(name: .customLong("health-address"), help: ArgumentHelp("The IPv4 address the health port listens on. Env: HEALTH_ADDRESS. Default: 0.0.0.0 (a pod's probes come from the kubelet).", valueName: "ip"))
    var healthAddress: String?

    @OptionGroup var archive: ArchiveOptions

    @OptionGroup var common: CommonOptions

    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        await ExtractorCLI.runFollow(self, environment: environment, context: context, span: span)
    }
}

/// What `follow` runs with.
struct FollowConfiguration: Sendable {
    var common: CommonConfiguration
    var intervals: [KlineInterval]
    /// `--trades`: the aggregate-trade table too.
    var trades: Bool
    var streamURL: String
    var source: SourceMode
    var archive: ArchiveSettings
    var lookbackHours: Int
    /// `/healthz` and `/readyz`: address and port, or nil.
    var health: (host: String, port: UInt16)?
}

extension ConfigurationReader {
    static func follow(_ command: FollowCommand, environment env: [String: String]) throws(ConfigurationError) -> FollowConfiguration {
        guard !command.common.dryRun else { throw ConfigurationError("follow writes as it goes: --dry-run does not apply (run klines --dry-run to see a plan)") }
        let common = try common(command.common, environment: env, databaseRequired: true)
        // --trades alone follows trades only; otherwise --timeframes is required, as for klines.
        let intervals = command.trades && command.timeframes == nil ? [] : try intervals(command.timeframes, market: common.market)
        let variable = common.market.streamURLVariable
        let (text, from) = command.wsURL.map { ($0, "--ws-url") } ?? env[variable].map { ($0, variable) } ?? (common.market.defaultStreamBaseURL, "default")
        let (source, archive) = try archive(command.archive, sourceVariable: "BINANCE_KLINES_SOURCE", env)
        let lookback = try positive(command.lookbackHours, env: "LOOKBACK_HOURS", env, default: 24, option: "--lookback-hours")
        var health: (String, UInt16)?
        if command.healthPort != nil || !(env["HEALTH_PORT"] ?? "").isEmpty {
            let port = try positive(command.healthPort, env: "HEALTH_PORT", env, default: 0, option: "--health-port")
            let host = command.healthAddress ?? env["HEALTH_ADDRESS"].flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
            do { try HealthServer.checkAvailable(host: host, port: UInt16(port)) } catch {
                throw ConfigurationError("invalid health port (--health-port / HEALTH_PORT, --health-address / HEALTH_ADDRESS): \(error); pick a free port")
            }
            health = (host, UInt16(port))
        }
        return FollowConfiguration(common: common, intervals: intervals, trades: command.trades, streamURL: try streamURL(text, source: from), source: source,
                                   archive: archive, lookbackHours: lookback, health: health)
    }

    /// A WebSocket base URL: `ws://` or `wss://`, a host, an optional path prefix; no query (the streams go there).
    static func streamURL(_ text: String, source: String) throws(ConfigurationError) -> String {
        let lower = text.lowercased()
        let scheme = lower.hasPrefix("wss://") ? 6 : lower.hasPrefix("ws://") ? 5 : 0
        guard scheme > 0, text.count > scheme, !text.contains(" "), !text.contains("?"), !text.contains("#"),
              URLParts.host(text) != nil else {
            let shown = String(URLCredentials.redacted(text).prefix { $0 != "?" }.prefix(120))
            throw ConfigurationError("invalid WebSocket URL '\(shown)' (\(source)): expected ws://host[:port][/prefix] or wss://...")
        }
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }
}

extension ExtractorCLI {
    static func runFollow(_ command: FollowCommand, environment: [String: String], context: RunContext, span: any Span) async -> Int32 {
        let config: FollowConfiguration
        do { config = try ConfigurationReader.follow(command, environment: environment) } catch {
            span.recordError(error)
            return fail(error, context: context)
        }
        let common = config.common
        return await JobRunner(command: "follow", config: common, context: context, span: span).run(
            klineTables: config.intervals.map { KlineTable(market: common.market, interval: $0) },
            otherTables: [ConfirmedGapTable.definition] + (config.trades ? [TradeTable(market: common.market).definition] : []),
            describe: ["timeframes": config.intervals.map(\.rawValue).joined(separator: ","), "trades": "\(config.trades)", "source": config.source.rawValue, "spool_dir": config.archive.spoolDirectory,
                       "ws_url": URLCredentials.redacted(config.streamURL)]
        ) { resources in
            var catchUp = SymbolExtractor.Settings(planner: RangePlanner(lookbackMilliseconds: Int64(config.lookbackHours) * 3_600_000),
                                                   batchSize: common.batchSize, sourceMode: config.source)
            catchUp.archive = resources.archive(config.source, config.archive)
            // Catch-ups record their files and REST rows as any run does; candles from final events are not counted.
            catchUp.ledger = resources.ledger
            let ledger = resources.ledger
            // Catch-ups a few at a time (four per worker): the weight budget and the database set their pace anyway.
            let gate = CatchUpGate(slots: common.maxWorkers * 4)
            var settings = KlineFollower.Settings()
            settings.catchUp = catchUp
            settings.gate = gate
            let streamLogger = makeLogger("streams", level: common.logLevel, context: context)
            let connector = WebSocketConnector(logger: streamLogger)
            let attempts = ConnectionAttempts()
            // Kline streams speak every update period; a trades-only connection may be quiet for a while (an illiquid symbol).
            let hubSettings = config.intervals.isEmpty ? StreamHub.Settings(silenceAfter: 300_000)
                : StreamHub.Settings.standard(market: common.market, intervals: config.intervals)
            let streams: [MarketStream] = resources.symbols.flatMap { symbol in
                config.intervals.map { MarketStream.kline(symbol, $0) } + (config.trades ? [MarketStream.aggTrade(symbol)] : [])
            }
            let monitor = FollowMonitor(units: streams.map(\.name))
            // One writer for every kline unit: finals that close together commit together.
            let writer = FollowWriter(store: resources.klineStore)
            let tradeStore = resources.tradeStore
            let startTime = resources.clock.now() - Int64(config.lookbackHours) * 3_600_000
            let archive = catchUp.archive
            var followers: [any LongRunningUnit] = []
            var hubs: [StreamHub] = []
            for group in stride(from: 0, to: streams.count, by: common.market.maxStreamsPerConnection) {
                let part = streams[group..<min(group + common.market.maxStreamsPerConnection, streams.count)]
                var inboxes: [String: FollowInbox] = [:]
                for stream in part {
                    let inbox = FollowInbox()
                    inboxes[stream.name] = inbox
                    switch stream {
                    case .kline(let symbol, let interval):
                        followers.append(KlineFollower(unit: ExtractionUnit(market: common.market, symbol: symbol, interval: interval), inbox: inbox,
                                                       source: resources.client, writer: writer, clock: resources.clock,
                                                       settings: settings, logger: resources.logger, monitor: monitor))
                    case .aggTrade(let symbol):
                        let client = resources.client, clock = resources.clock, logger = resources.logger
                        var tradeSettings = TradeFollower.Settings()
                        tradeSettings.batchSize = common.batchSize
                        tradeSettings.gate = gate
                        followers.append(TradeFollower(unit: ExtractionUnit(market: common.market, symbol: symbol, dataset: .aggTrades), inbox: inbox,
                                                       source: client, store: tradeStore, clock: clock, settings: tradeSettings,
                                                       logger: logger, monitor: monitor) {
                            var extractor = TradeExtractor(market: common.market, symbol: symbol, client: client, store: tradeStore, clock: clock,
                                                           startTime: startTime, batchSize: common.batchSize, maxPages: 1_000, dryRun: false,
                                                           sourceMode: config.source, archive: archive, logger: logger)
                            extractor.recordsTo = ledger
                            return extractor
                        })
                    }
                }
                let url = MarketStream.url(base: config.streamURL, streams: Array(part))
                hubs.append(StreamHub(url: url, inboxes: inboxes, connector: connector, attempts: attempts, clock: resources.clock,
                                      settings: hubSettings, logger: streamLogger, monitor: monitor))
            }
            let health = try config.health.map { health in
                try HealthServer(host: health.host, port: health.port) { monitor.readiness() }
            }
            return .follow(FollowPlan(units: followers, hubs: hubs, monitor: monitor, health: health))
        }
    }
}
