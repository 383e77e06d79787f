import BinanceAPI
import BinanceArchive
import Clocks
import FlyingFox
import FlyingSocks
import Foundation

/// A Binance-compatible REST server for tests, the demo and benchmarks: USD-M futures (`/fapi/v1/...`) and spot
/// (`/api/v3/...`) klines, `exchangeInfo`, `time` and `ping`, with Binance's documented weights, limits and error
/// codes, and switchable faults. Each rule cites its source in the Binance API documentation.
public actor BinanceSimulator {
    public struct Configuration: Sendable {
        public var host: String = "127.0.0.1"
        public var port: UInt16 = 0
        /// Request-weight limit and window (Binance: futures 2400 / spot 6000 per minute); squeeze the window to
        /// test a minute's behaviour in a second.
        public var futuresRule = Market.futures.defaultWeightLimit
        public var spotRule = Market.spot.defaultWeightLimit
        public var requestsBeforeBan = 5
        public var firstBanMilliseconds: Int64 = 120_000
        public var faults: [FaultPlan] = []
        /// Keep every historical klines answer once computed, so benchmarks measure the client, not the simulator.
        public var cachePages = false
        /// Extra symbols BENCH000USDT, BENCH001USDT, ... listed since 2019 (benchmarks).
        public var extraSymbols = 0
        /// Where archive files are written and kept between runs (benchmarks: a gigabyte file is made once); nil: a
        /// folder of this simulator's own under the temporary directory, removed when it stops.
        public var archiveCacheFolder: String?
        /// Aggregate trades per minute by symbol (`SimulatedSymbol.tradesPerMinute`).
        public var tradesPerMinute: [String: Int64] = [:]
        /// How far back the trading data endpoints answer (Binance: "the latest 30 days"); an older `startTime` is -1130.
        public var metricsHistoryMilliseconds: Int64 = FuturesMetrics.restHistoryMilliseconds

        public init() {}

        /// Applies one limit and window to both markets.
        public mutating func setWeightLimit(_ limit: Int, windowSeconds: Double) {
            let rule = RateLimitRule(limit: limit, windowMilliseconds: Int64(windowSeconds * 1000))
            futuresRule = rule
            spotRule = rule
        }
    }

    /// What the simulator has seen, for tests and benchmarks.
    public struct Stats: Sendable, Equatable, Codable {
        public var requests = 0
        public var klinesRequests = 0
        public var byStatus: [String: Int] = [:]
        public var weightUsed = 0
        public var klinesServed = 0
        /// Requests to the trading data endpoints (`/futures/data/*`).
        public var metricsRequests = 0
        public var faultsInjected = 0
        public var fundingRequests = 0
        /// Requests to the archive tree, and zip downloads among them.
        public var archiveRequests = 0
        public var archiveDownloads = 0
        /// 206 answers to `Range` requests, and the first byte each asked for.
        public var archivePartialAnswers = 0
        public var archiveRangeStarts: [Int] = []
        public var aggTradesRequests = 0
        /// Stream connections accepted, and messages sent on them.
        public var streamConnections = 0
        public var streamMessages = 0
        /// Arrival time of the first request of any kind (server clock, ms).
        public var firstRequestAt: Int64?
        /// Weight used per window start (ms), for budget-use measurements.
        public var weightByWindow: [String: Int] = [:]
        /// Arrival times (server clock, ms) of klines requests, in order.
        public var klinesRequestTimes: [Int64] = []
        public var tooManyRequests: Int { byStatus["429"] ?? 0 }
        public var bans: Int { byStatus["418"] ?? 0 }
    }

    private var configuration: Configuration
    public private(set) var market: SimulatedMarket
    /// Market streams (`StreamServer.swift`): connection attempts in the last 5 minutes, connections accepted so far,
    /// faults and rules.
    var streamAttempts: [Int64] = []
    var streamConnections = 0
    var streamFaults: [StreamFaultPlan] = []
    var streamRules: [Market: StreamRules] = [:]
    let clock: any WallClock
    private var ledgers: [Market: WeightLedger]
    /// The funding rate endpoint's own limit (500 requests per 5 minutes per IP).
    private var fundingLedger = WeightLedger(rule: FundingRate.requestRule)
    /// The trading data endpoints' own limit (`/futures/data/*`: 1000 requests per 5 minutes per IP, weight 0).
    private var tradingDataLedger = WeightLedger(rule: FuturesMetrics.requestRule)
    var stats = Stats()
    /// Requests seen per endpoint (`/klines`, `/fundingRate`, `/aggTrades`), for the faults' `every`.
    private var seen: [String: Int] = [:]
    private var faultCounts: [Int] = []
    private var server: HTTPServer?
    private var serverTask: Task<Void, any Error>?
    public private(set) var port: UInt16 = 0
    private var pageCache: [String: Data] = [:]
    /// Archive files built so far, by path (they never change once published), and the folder they are written to.
    private var archiveBuilds: [String: Task<BuiltArchive?, any Error>] = [:]
    private let archiveFolder: String
    /// Whether `archiveFolder` is this simulator's own (removed by `stop`), not a cache kept between runs.
    private let ownsArchiveFolder: Bool
    private var archiveFaults: [String: ArchiveFault] = [:]
    private var archiveDownloads: [String: Int] = [:]
    private var archiveDrops: [String: Int] = [:]
    /// Files uploaded again (by name), and when: their Last-Modified.
    private var reuploads: [String: Int64] = [:]
    /// Re-uploads due at a time (`--reupload`), done by the first archive request at or after it.
    private var scheduledReuploads: [String: Int64] = [:]

    public init(configuration: Configuration = Configuration(), market: SimulatedMarket? = nil, clock: any WallClock = SystemClock()) {
        self.configuration = configuration
        self.clock = clock
        var market = market ?? .standard(now: clock.now())
        for i in 0..<configuration.extraSymbols {
            let name = "BENCH" + String(format: "%03d", i) + "USDT"
            market.symbols[name] = SimulatedSymbol(name: name, listedAt: 1_546_300_800_000, basePriceTicks: 100_000_000 + Int64(i) * 1_000_000,
                                                   baseVolumePerMinute: 10_000)
        }
        for (name, pace) in configuration.tradesPerMinute { market.symbols[name]?.tradesPerMinute = pace }
        self.market = market
        if let folder = configuration.archiveCacheFolder {
            archiveFolder = folder
            ownsArchiveFolder = false
        } else {
            let temporary = NSTemporaryDirectory()
            // What a killed simulator left a day ago goes.
            for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [] where name.hasPrefix("binance-sim-") {
                let path = (temporary as NSString).appendingPathComponent(name)
                if let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                   modified.timeIntervalSinceNow < -86_400 { try? FileManager.default.removeItem(atPath: path) }
            }
            archiveFolder = (temporary as NSString).appendingPathComponent("binance-sim-\(UUID().uuidString)")
            ownsArchiveFolder = true
        }
        try? FileManager.default.createDirectory(atPath: archiveFolder, withIntermediateDirectories: true)
        ledgers = [
            .futures: WeightLedger(rule: configuration.futuresRule, requestsBeforeBan: configuration.requestsBeforeBan,
                                   firstBanMilliseconds: configuration.firstBanMilliseconds),
            .spot: WeightLedger(rule: configuration.spotRule, requestsBeforeBan: configuration.requestsBeforeBan,
                                firstBanMilliseconds: configuration.firstBanMilliseconds),
            .coinm: WeightLedger(rule: configuration.futuresRule, requestsBeforeBan: configuration.requestsBeforeBan,
                                 firstBanMilliseconds: configuration.firstBanMilliseconds),
        ]
        faultCounts = Array(repeating: 0, count: configuration.faults.count)
    }

    /// `http://127.0.0.1:PORT`, once started.
    public var baseURL: String { "http://\(configuration.host):\(port)" }

    public var statistics: Stats { stats }

    /// Starts listening; returns the bound port (a free one when `port` is 0).
    @discardableResult
    public func start() async throws -> UInt16 {
        let address = try sockaddr_in.inet(ip4: configuration.host, port: configuration.port)
        // Long handler timeout: the `hang` fault must outlast any client timeout.
        let server = HTTPServer(address: address, timeout: 3600, pool: NoDelaySocketPool(inner: HTTPServer.defaultPool()), logger: .disabled)
        await server.appendRoute("*") { [self] request in await self.handle(request) }
        self.server = server
        serverTask = Task { try await server.run() }
        try await server.waitUntilListening()
        if case .ip4(_, let boundPort)? = await server.listeningAddress { port = boundPort }
        return port
    }

    /// Runs until the task is cancelled.
    public func run() async throws {
        try await serverTask?.value
    }

    public func stop() async {
        await server?.stop(timeout: 1)
        serverTask?.cancel()
        server = nil
        if ownsArchiveFolder { try? FileManager.default.removeItem(atPath: archiveFolder) }
    }

    // MARK: Controls for tests

    public func setFaults(_ faults: [FaultPlan]) {
        configuration.faults = faults
        faultCounts = Array(repeating: 0, count: faults.count)
    }

    public func setOutages(_ outages: [Range<Int64>]) {
        market.outages = outages
        archiveBuilds = [:]
    }

    /// Faults of stream connections (by the order the simulator accepts them).
    public func setStreamFaults(_ faults: [StreamFaultPlan]) { streamFaults = faults }

    /// A market's stream rules (a 24-hour lifetime compressed to seconds, a shorter pong deadline).
    public func setStreamRules(_ rules: StreamRules, for market: Market) { streamRules[market] = rules }

    /// Faults of archive files, by file name (`BTCUSDT-1m-2024-01.zip`).
    public func setArchiveFaults(_ faults: [String: ArchiveFault]) {
        archiveFaults = faults
        archiveBuilds = [:]
        archiveDownloads = [:]
        archiveDrops = [:]
    }

    /// Uploads a file again, now: served from then on with `fault` (nil: correct rows), a new Last-Modified and the ETag
    /// of its new bytes, as S3 serves an object written over (binance-public-data #436: files replaced after
    /// publication).
    public func reupload(_ fileName: String, fault: ArchiveFault? = nil) {
        archiveFaults[fileName] = fault
        for key in archiveBuilds.keys where key.hasSuffix("/" + fileName) { archiveBuilds[key] = nil }
        reuploads[fileName] = clock.now()
    }

    /// Uploads `fileName` again at `at` (see `reupload`): the first archive request at or after that time finds it replaced.
    public func scheduleReupload(_ fileName: String, at: Int64) { scheduledReuploads[fileName] = at }

    public func addSymbol(_ symbol: SimulatedSymbol) {
        market.symbols[symbol.name] = symbol
        archiveBuilds = [:]
    }

    /// Aggregate trades per minute of `symbol` (REST, streams and archive files alike).
    public func setTradesPerMinute(_ pace: Int64, for symbol: String) {
        market.symbols[symbol]?.tradesPerMinute = max(1, pace)
        archiveBuilds = [:]
    }

    public func resetStatistics() { stats = Stats() }

    /// The candles the simulator serves for a range, as a client would receive them (for exact comparisons).
    public func expectedFundingRates(symbol: String, from start: Int64, through end: Int64) -> [FundingRate] {
        guard let s = market.symbols[symbol] else { return [] }
        return market.fundingRates(symbol: s, start: start, end: end, limit: .max, now: clock.now())
    }

    public func expectedAggTrades(symbol: String, fromId: Int64, throughTime end: Int64) -> [AggTrade] {
        guard let s = market.symbols[symbol] else { return [] }
        return market.aggTrades(symbol: s, fromId: fromId, start: nil, end: nil, limit: 10_000_000, now: min(end, clock.now()))
    }

    /// What `futures_metrics` should hold for `symbol` over [start, end] (every row published by now).
    public func expectedMetrics(symbol: String, from start: Int64, through end: Int64) -> [FuturesMetric] {
        guard let s = market.symbols[symbol] else { return [] }
        return market.metrics(symbol: s, start: start, end: end, now: clock.now())
    }

    public func expectedKlines(symbol: String, interval: KlineInterval, series: PriceSeries = .trade, from start: Int64,
                               through end: Int64) -> [Kline] {
        // A COIN-M index is asked by pair and made from the pair's perpetual.
        guard let s = market.symbols[symbol] ?? (series == .index ? market.symbols[symbol + "_PERP"] : nil) else { return [] }
        return market.klines(symbol: s, series: series, interval: interval, start: start, end: end, limit: .max, now: clock.now())
            .filter { !$0.isOpen(at: clock.now()) }
    }

    // MARK: Request handling

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        if request.headers[.upgrade]?.lowercased() == "websocket" { return await streamUpgrade(request) }
        stats.requests += 1
        if stats.firstRequestAt == nil { stats.firstRequestAt = clock.now() }
        let path = request.path
        if path.hasPrefix("/data/") { return await archive(request) }
        if path.hasPrefix("/futures/data/") {
            let query = Dictionary(request.query.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
            let answer = tradingData(path: path, query: query, now: clock.now())
            guard answer.statusCode.code == 200, let fault = nextFault(endpoint: "/futures/data") else { return finish(answer, market: .futures) }
            if fault.kind.isLie { return finish(await lie(fault.kind, answer, symbol: query["symbol"]), market: .futures) }
            if fault.kind == .slow { try? await Task.sleep(nanoseconds: UInt64(fault.slowMilliseconds) * 1_000_000); return finish(answer, market: .futures) }
            return await inject(fault, market: .futures)
        }
        let market: Market
        if path.hasPrefix("/fapi/") { market = .futures } else if path.hasPrefix("/dapi/") { market = .coinm } else if path.hasPrefix("/api/") { market = .spot } else {
            if path == "/sim/stats" {
                let body = (try? JSONEncoder().encode(stats)) ?? Data()
                return HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"], body: body)
            }
            return finish(error(404, -1000, "Unknown path \(path)."), market: nil)
        }
        let query = Dictionary(request.query.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
        let endpoint = String(path.drop(while: { $0 != "v" }).drop(while: { $0 != "/" }))
        // Mark, index and premium index klines: USD-M only; weighed as the klines are (USD-M Futures, Market Data, "Mark
        // Price Kline/Candlestick Data" and the others: "Request Weight: based on parameter LIMIT").
        let series = market != .spot ? PriceSeries.allCases.first { $0 != .trade && "/" + $0.endpointName == endpoint } : nil
        let weight: Int
        switch endpoint {
        case _ where series != nil, "/klines":
            let limit = query["limit"].flatMap(Int.init) ?? market.defaultKlinesLimit
            weight = market.klinesWeight(limit: limit)
        case "/exchangeInfo": weight = market.exchangeInfoWeight
        case "/time", "/ping": weight = 1
        case "/fundingRate" where market != .spot: weight = FundingRate.weight
        case "/aggTrades": weight = market.aggTradesWeight
        default: return finish(error(404, -1000, "Unknown endpoint \(path)."), market: market)
        }
        let now = clock.now()
        switch ledgers[market]!.admit(weight: weight, now: now) {
        case .tooManyRequests(let seconds):
            var response = error(429, BinanceErrorCode.tooManyRequests,
                                 "Too much request weight used; current limit is \(ledgers[market]!.rule.limit) request weight per "
                                 + "\(ledgers[market]!.rule.windowMilliseconds / 1000) SECOND. Please use WebSocket Streams for live updates to avoid polling the API.")
            response.headers[HTTPHeader("Retry-After")] = "\(seconds)"
            return finish(response, market: market)
        case .banned(let until, let seconds):
            var response = error(418, BinanceErrorCode.tooManyRequests,
                                 "Way too much request weight used; IP banned until \(until). Please use WebSocket Streams for live updates to avoid bans.")
            response.headers[HTTPHeader("Retry-After")] = "\(seconds)"
            return finish(response, market: market)
        case .allowed:
            stats.weightUsed += weight
            let window = ledgers[market]!.windowStart
            stats.weightByWindow["\(window)", default: 0] += weight
        }
        if endpoint == "/fundingRate", case .tooManyRequests(let seconds) = fundingLedger.admit(weight: 1, now: now) {
            // "share 500/5min/IP rate limit with GET /fapi/v1/fundingInfo" (USD-M Futures, Get Funding Rate History).
            var response = error(429, BinanceErrorCode.tooManyRequests, "Too many requests; current limit of fundingRate is 500 requests per 5 minutes.")
            response.headers[HTTPHeader("Retry-After")] = "\(seconds)"
            return finish(response, market: market)
        }
        switch endpoint {
        case _ where series != nil, "/klines":
            let series = series ?? .trade
            stats.klinesRequests += 1
            stats.klinesRequestTimes.append(now)
            // Every candle endpoint takes the klines' faults.
            let fault = nextFault(endpoint: "/klines")
            if let fault, fault.kind.isLie {
                return finish(await lie(fault.kind, klines(market: market, series: series, query: query, now: clock.now()), symbol: query["symbol"]),
                              market: market)
            }
            if let fault {
                if fault.kind != .slow { return await inject(fault, market: market) }
                // Slow: the real answer, late.
                try? await Task.sleep(nanoseconds: UInt64(fault.slowMilliseconds) * 1_000_000)
            }
            let key = path + "?" + query.keys.sorted().map { "\($0)=\(query[$0]!)" }.joined(separator: "&")
            if configuration.cachePages, let body = pageCache[key] {
                return finish(HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"], body: body), market: market)
            }
            let response = klines(market: market, series: series, query: query, now: clock.now())
            // Only answers that can no longer change: ending before the current candle could have opened.
            if configuration.cachePages, response.statusCode.code == 200, let end = query["endTime"].flatMap(Int64.init),
               end < clock.now() - 86_400_000, let body = try? await response.bodyData {
                pageCache[key] = body
                return finish(HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"], body: body), market: market)
            }
            return finish(response, market: market)
        case "/exchangeInfo":
            return finish(exchangeInfo(market: market, now: now), market: market)
        case "/fundingRate":
            stats.fundingRequests += 1
            let answer = fundingRates(query: query, now: now)
            if let fault = nextFault(endpoint: endpoint) { return finish(await lie(fault.kind, answer, symbol: query["symbol"]), market: market) }
            return finish(answer, market: market)
        case "/aggTrades":
            stats.aggTradesRequests += 1
            let answer = aggTrades(market: market, query: query, now: now)
            if let fault = nextFault(endpoint: endpoint) { return finish(await lie(fault.kind, answer, symbol: query["symbol"]), market: market) }
            return finish(answer, market: market)
        case "/time":
            return finish(json(200, "{\"serverTime\":\(now)}"), market: market)
        default:
            return finish(json(200, "{}"), market: market)
        }
    }

    private func nextFault(endpoint: String) -> FaultPlan? {
        seen[endpoint, default: 0] += 1
        let n = seen[endpoint, default: 0]
        for (i, plan) in configuration.faults.enumerated() where plan.kind.endpoints.contains(endpoint) && n % plan.every == 0 {
            if let count = plan.count, faultCounts[i] >= count { continue }
            faultCounts[i] += 1
            stats.faultsInjected += 1
            return plan
        }
        return nil
    }

    private func inject(_ fault: FaultPlan, market: Market) async -> HTTPResponse {
        switch fault.kind {
        case .http500:
            return finish(error(500, BinanceErrorCode.unknown, "An unknown error occured while processing the request."), market: market)
        case .http503:
            return finish(error(503, BinanceErrorCode.disconnected, "Service Unavailable."), market: market)
        case .http408:
            return finish(error(408, BinanceErrorCode.timeout, "Timeout waiting for response from backend server. Send status unknown; execution status unknown."), market: market)
        case .badParameter:
            return finish(error(400, BinanceErrorCode.illegalChars, "Illegal characters found in a parameter."), market: market)
        case .http429:
            ledgers[market]!.imposeBackOff(seconds: fault.retryAfterSeconds, now: clock.now())
            var response = error(429, BinanceErrorCode.tooManyRequests, "Too many requests; please use the websocket for live updates.")
            response.headers[HTTPHeader("Retry-After")] = "\(fault.retryAfterSeconds)"
            return finish(response, market: market)
        case .http418:
            let until = ledgers[market]!.imposeBan(seconds: fault.retryAfterSeconds, now: clock.now())
            var response = error(418, BinanceErrorCode.tooManyRequests,
                                 "Way too much request weight used; IP banned until \(until). Please use WebSocket Streams for live updates to avoid bans.")
            response.headers[HTTPHeader("Retry-After")] = "\(fault.retryAfterSeconds)"
            return finish(response, market: market)
        case .html502:
            var response = HTTPResponse(statusCode: HTTPStatusCode(502, phrase: "Bad Gateway"),
                                        headers: [.contentType: "text/html"],
                                        body: Data("<html><body><h1>502 Bad Gateway</h1></body></html>".utf8))
            response.headers[.contentType] = "text/html"
            return finish(response, market: market)
        case .slow, .descending, .duplicate, .highBelowLow, .farFuture, .wrongSymbol, .tradeIds, .tradeTimes:
            return finish(json(200, "[]"), market: market)  // not reached: handled in `handle`
        case .hang:
            try? await Task.sleep(nanoseconds: 3_600_000_000_000)
            return finish(json(200, "[]"), market: market)
        case .truncate, .reset:
            let body = Data("[[1,\"1.0\",\"1.0\",\"1.0\",\"1.0\",\"1.0\",2,\"1.0\",1,\"1.0\",\"1.0\",\"0\"]]".utf8)
            let sent = fault.kind == .truncate ? body.count / 2 : 0
            let sequence = FailingBytes(bytes: Array(body.prefix(sent)))
            var response = HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"],
                                        body: HTTPBodySequence(from: sequence, count: body.count))
            response.headers[.contentType] = "application/json"
            return finish(response, market: market)
        }
    }

    /// GET or HEAD of a file of the archive tree (data.binance.vision): the zip, or its CHECKSUM; 404 for what does not
    /// exist or is not published yet (Binance's own answer then is a 404 from its storage, with an XML body).
    /// A zip is written to disk once and sent from there, with what S3 sends for an object (Amazon S3 API Reference,
    /// GetObject and HeadObject): `Content-Length`, `ETag`, `Accept-Ranges: bytes`; a `Range: bytes=N-` request is
    /// answered 206 with `Content-Range`, unless an `If-Range` names another ETag (then 200 and the whole file, RFC 9110
    /// 13.1.5); a first byte past the end is 416.
    private func archive(_ request: FlyingFox.HTTPRequest) async -> HTTPResponse {
        stats.archiveRequests += 1
        let head = request.method == .HEAD
        let notFound = HTTPResponse(statusCode: .notFound, headers: [.contentType: "application/xml"],
                                    body: Data("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code></Error>".utf8))
        for (name, at) in scheduledReuploads where clock.now() >= at {
            scheduledReuploads[name] = nil
            reupload(name)
            reuploads[name] = at
        }
        guard let (file, isChecksum) = ArchiveTree.file(at: request.path), ArchiveTree.isPublished(file, now: clock.now()) else { return notFound }
        let fault = archiveFaults[file.fileName]
        if fault == .missing { return notFound }
        let built: BuiltArchive
        do {
            guard let made = try await archiveFile(file, fault: fault) else { return notFound }
            built = made
        } catch {
            return HTTPResponse(statusCode: .internalServerError, headers: [.contentType: "text/plain"], body: Data("\(error)".utf8))
        }
        if isChecksum {
            // `<sha256>  NAME.zip`, as `sha256sum` writes it; a wrong one names the digest of other bytes.
            let digest = fault == .wrongChecksum ? SHA256.hex(Array(built.sha256.utf8)) : built.sha256
            let body = Data("\(digest)  \(file.fileName)\n".utf8)
            if head { return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain", .contentLength: "\(body.count)"], body: Data()) }
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain"], body: body)
        }
        // Last-Modified as S3 sends it (an IMF-fixdate, RFC 9110 5.6.7): the upload's time, at publication or re-upload.
        let modified = reuploads[file.fileName] ?? ArchiveTree.publication(of: file)
        var headers: [HTTPHeader: String] = [.contentType: "application/zip", HTTPHeader("ETag"): built.etag, HTTPHeader("Accept-Ranges"): "bytes",
                                             HTTPHeader("Last-Modified"): Self.httpDate(modified)]
        if head {
            headers[.contentLength] = "\(built.size)"
            return HTTPResponse(statusCode: .ok, headers: headers, body: Data())
        }
        var range = ByteRange(header: request.headers[HTTPHeader("Range")], size: built.size)
        if let ifRange = request.headers[HTTPHeader("If-Range")], ifRange != built.etag { range = .whole }
        var status = HTTPStatusCode.ok
        var bytes = 0..<built.size
        switch range {
        case .whole: break
        case .unsatisfiable:
            headers = [HTTPHeader("Content-Range"): "bytes */\(built.size)"]
            return HTTPResponse(statusCode: HTTPStatusCode(416, phrase: "Range Not Satisfiable"), headers: headers, body: Data())
        case .part(let part):
            status = HTTPStatusCode(206, phrase: "Partial Content")
            bytes = part
            stats.archivePartialAnswers += 1
            stats.archiveRangeStarts.append(part.lowerBound)
            headers[HTTPHeader("Content-Range")] = "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(built.size)"
        }
        archiveDownloads[file.path, default: 0] += 1
        let downloads = archiveDownloads[file.path, default: 0]
        var body = FileBytes(path: built.path, range: bytes)
        if case .damaged(let times) = fault, downloads <= times, built.size > 64 { body.flip = built.size / 2 }
        if case .drop(let byte, let times) = fault, bytes.contains(byte) {
            archiveDrops[file.path, default: 0] += 1
            if archiveDrops[file.path, default: 0] <= times { body.dropAt = byte }
        }
        stats.archiveDownloads += 1
        return HTTPResponse(statusCode: status, headers: headers, body: HTTPBodySequence(from: body, count: bytes.count, suggestedBufferSize: 64 << 10))
    }

    /// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 5.6.7).
    static func httpDate(_ ms: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// The zip of `file` on disk: built once (off the actor: a gigabyte file takes a minute), shared by every request
    /// that asks while it is being built.
    private func archiveFile(_ file: ArchiveFile, fault: ArchiveFault?) async throws -> BuiltArchive? {
        let key = file.path
        if let task = archiveBuilds[key] { return try await task.value }
        let (market, now, folder) = (market, clock.now(), archiveFolder)
        let task = Task.detached { try ArchiveTree.build(file, fault: fault, market: market, now: now, folder: folder) }
        archiveBuilds[key] = task
        do {
            return try await task.value
        } catch {
            archiveBuilds[key] = nil
            throw error
        }
    }

    /// A correct answer altered by one lie (see `FaultKind`); errors and empty pages pass unchanged.
    private func lie(_ kind: FaultKind, _ answer: HTTPResponse, symbol: String?) async -> HTTPResponse {
        guard answer.statusCode.code == 200, let body = try? await answer.bodyData,
              var rows = (try? JSONSerialization.jsonObject(with: body)) as? [Any], !rows.isEmpty else { return answer }
        let middle = rows.count / 2
        let threeYears: Int64 = 3 * 365 * 86_400_000
        switch kind {
        case .descending:
            rows.reverse()
        case .duplicate:
            rows.insert(rows[middle], at: middle)
        case .highBelowLow:
            if var row = rows[middle] as? [Any], row.count > 3 { row.swapAt(2, 3); rows[middle] = row }
        case .farFuture:
            if var row = rows[rows.count - 1] as? [Any], let open = row[0] as? Int64, let close = row[6] as? Int64 {
                row[0] = open + threeYears
                row[6] = close + threeYears
                rows.append(row)
            } else if var row = rows[rows.count - 1] as? [String: Any], let time = row["fundingTime"] as? Int64 {
                row["fundingTime"] = time + threeYears
                rows.append(row)
            } else if var row = rows[rows.count - 1] as? [String: Any], let time = (row["timestamp"] as? String).flatMap({ Int64($0) }) ?? row["timestamp"] as? Int64 {
                row["timestamp"] = "\(time + threeYears)"
                rows.append(row)
            }
        case .wrongSymbol:
            if var row = rows[middle] as? [String: Any] {
                row["symbol"] = symbol == "ETHUSDT" ? "BTCUSDT" : "ETHUSDT"
                rows[middle] = row
            }
        case .tradeIds:
            if var row = rows[middle] as? [String: Any], let f = row["f"] as? Int64 {
                row["l"] = f - 1
                rows[middle] = row
            }
        case .tradeTimes:
            if rows.count > 1, var row = rows[rows.count - 1] as? [String: Any], let time = (rows[0] as? [String: Any])?["T"] as? Int64 {
                row["T"] = time - 1000
                rows[rows.count - 1] = row
            }
        default:
            return answer
        }
        guard let data = try? JSONSerialization.data(withJSONObject: rows) else { return answer }
        return HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"], body: data)
    }

    /// GET /fapi/v1/klines and /api/v3/klines, and USD-M's /fapi/v1/markPriceKlines, /indexPriceKlines (by `pair`)
    /// and /premiumIndexKlines.
    /// Parameters (Binance documentation, "Kline/Candlestick Data"): symbol and interval mandatory; startTime,
    /// endTime optional ("If startTime and endTime are not sent, the most recent klines are returned"); limit
    /// "Default 500; max 1500" on futures, "Default 500; max 1000" on spot; klines are returned oldest first,
    /// with open time in [startTime, endTime]; the last candle may still be open. The price series answer the same
    /// rows with "ignore" in the volume fields and the count of basic data in field 8 ("Mark Price Kline/Candlestick
    /// Data": `"0"` there; its example writes one `"0 "`).
    private func klines(market: Market, series: PriceSeries = .trade, query: [String: String], now: Int64) -> HTTPResponse {
        let parameter = series.instrumentParameter
        guard let symbolName = query[parameter], !symbolName.isEmpty else {
            return error(400, BinanceErrorCode.mandatoryParamEmptyOrMalformed,
                         "Mandatory parameter '\(parameter)' was not sent, was empty/null, or malformed.")
        }
        // A COIN-M index is a pair's (`BTCUSD`): its values follow the pair's perpetual.
        let name = series == .index && market == .coinm ? symbolName + "_PERP" : symbolName
        guard let symbol = listed(name, now: now), symbol.market == market || market == .spot && symbol.market == .futures else {
            return error(400, BinanceErrorCode.badSymbol, series == .index ? "Invalid pair." : "Invalid symbol.")
        }
        guard let intervalName = query["interval"] else {
            return error(400, BinanceErrorCode.mandatoryParamEmptyOrMalformed,
                         "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        }
        guard let interval = KlineInterval(binanceName: intervalName), interval.isAvailable(on: market) else {
            return error(400, BinanceErrorCode.badInterval, "Invalid interval.")
        }
        var limit = market.defaultKlinesLimit
        if let text = query["limit"] {
            guard let value = Int(text), value >= 1, value <= market.maxKlinesLimit else {
                return error(400, BinanceErrorCode.invalidParameter, "Data sent for parameter 'limit' is not valid.")
            }
            limit = value
        }
        var start: Int64?, end: Int64?
        for (name, slot) in [("startTime", 0), ("endTime", 1)] {
            guard let text = query[name] else { continue }
            guard let value = Int64(text), value >= 0 else {
                return error(400, BinanceErrorCode.invalidParameter, "Data sent for parameter '\(name)' is not valid.")
            }
            if slot == 0 { start = value } else { end = value }
        }
        if let start, let end, start > end {
            return error(400, -1128, "Combination of optional parameters invalid.")
        }
        let rows: [Kline]
        if market == .coinm, let span = market.maxKlinesSpanMilliseconds {
            // COIN-M, "Kline/Candlestick Data": "The difference between startTime and endTime can only be up to 200 days";
            // "Between startTime and endTime, the most recent limit data from endTime will be returned"; startTime alone
            // sets endTime 200 days later (up to now), endTime alone startTime 200 days before.
            if let start, let end, end - start > span {
                return error(400, BinanceErrorCode.invalidParameter, "The difference between startTime and endTime can only be up to 200 days.")
            }
            let to = min(end ?? start.map { $0 + span } ?? now, now)
            let from = start ?? (to - span)
            rows = self.market.latestKlines(symbol: symbol, series: series, interval: interval, end: to, limit: limit, now: now)
                .filter { $0.openTime >= from }
        } else if let start {
            rows = self.market.klines(symbol: symbol, series: series, interval: interval, start: start, end: end ?? now, limit: limit, now: now)
        } else {
            rows = self.market.latestKlines(symbol: symbol, series: series, interval: interval, end: end ?? now, limit: limit, now: now)
        }
        stats.klinesServed += rows.count
        return json(200, Self.encode(rows))
    }

    /// GET /futures/data/openInterestHist, topLongShortAccountRatio, topLongShortPositionRatio, globalLongShortAccountRatio
    /// and takerlongshortRatio (USD-M Futures, Market Data): `symbol` and `period` ("5m" … "1d") mandatory; `limit`
    /// "default 30, max 500"; "If startTime and endTime are not sent, the most recent data is returned"; "Only the data
    /// of the latest 30 days is available": an older `startTime` is 400 -1130. Weight 0; a limit of their own, 1000
    /// requests per 5 minutes per IP. The rows of a window are its newest `limit`, oldest first. Timestamps come as
    /// strings, as in Binance's examples, except the taker ratio's, which come as numbers: a client must read both.
    private func tradingData(path: String, query: [String: String], now: Int64) -> HTTPResponse {
        guard let endpoint = FuturesMetrics.Endpoint(rawValue: String(path.dropFirst("/futures/data/".count))) else {
            return error(404, -1000, "Unknown path \(path).")
        }
        stats.metricsRequests += 1
        if case .tooManyRequests(let seconds) = tradingDataLedger.admit(weight: 1, now: now) {
            var response = error(429, BinanceErrorCode.tooManyRequests, "Too many requests; current limit is 1000 requests per 5 minutes.")
            response.headers[HTTPHeader("Retry-After")] = "\(seconds)"
            return response
        }
        let periods: [String: Int64] = ["5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
                                        "6h": 21_600_000, "12h": 43_200_000, "1d": 86_400_000]
        guard let periodText = query["period"], !periodText.isEmpty else {
            return error(400, BinanceErrorCode.mandatoryParamEmptyOrMalformed, "Mandatory parameter 'period' was not sent, was empty/null, or malformed.")
        }
        guard let period = periods[periodText] else { return error(400, BinanceErrorCode.invalidParameter, "Data sent for parameter 'period' is not valid.") }
        switch common(query, now: now, maxLimit: FuturesMetrics.maxLimit, defaultLimit: 30) {
        case .failure(let box): return box.response
        case .success(let (symbol, start, end, limit)):
            let floor = now - configuration.metricsHistoryMilliseconds
            if let start, start < floor { return error(400, -1130, "parameter 'startTime' is invalid.") }
            let rows = market.metrics(symbol: symbol, start: max(start ?? floor, floor), end: end ?? now, now: now)
                .filter { $0.time % period == 0 }
            var body: [String] = []
            for row in rows.suffix(limit * 2) {
                let values: [DecimalString?]
                switch endpoint {
                case .openInterest: values = [row.sumOpenInterest, row.sumOpenInterestValue]
                case .topTraderAccounts: values = [row.topTraderAccountRatio]
                case .topTraderPositions: values = [row.topTraderPositionRatio]
                case .globalAccounts: values = [row.globalAccountRatio]
                case .taker: values = [row.takerBuySellRatio]
                }
                guard let present = values as? [DecimalString] else { continue }  // Binance has no row there
                let time = endpoint == .taker ? "\(row.time)" : "\"\(row.time)\""
                switch endpoint {
                case .openInterest:
                    body.append("{\"symbol\":\"\(symbol.name)\",\"sumOpenInterest\":\"\(present[0])\",\"sumOpenInterestValue\":\"\(present[1])\",\"timestamp\":\(time)}")
                case .taker:
                    body.append("{\"buySellRatio\":\"\(present[0])\",\"buyVol\":\"1.0\",\"sellVol\":\"1.0\",\"timestamp\":\(time)}")
                default:
                    body.append("{\"symbol\":\"\(symbol.name)\",\"longShortRatio\":\"\(present[0])\",\"longAccount\":\"0.5\",\"shortAccount\":\"0.5\",\"timestamp\":\(time)}")
                }
            }
            return json(200, "[" + body.suffix(limit).joined(separator: ",") + "]")
        }
    }

    /// A symbol Binance lists now: unknown and delisted symbols are "Invalid symbol." (-1121).
    private func listed(_ name: String, now: Int64) -> SimulatedSymbol? {
        guard let symbol = market.symbols[name], symbol.delistedAt.map({ $0 > now }) ?? true else { return nil }
        return symbol
    }

    /// The `symbol`, `startTime`, `endTime` and `limit` parameters, checked as Binance checks them.
    private func common(_ query: [String: String], now: Int64, maxLimit: Int, defaultLimit: Int)
        -> Result<(SimulatedSymbol, Int64?, Int64?, Int), HTTPResponseBox> {
        guard let name = query["symbol"], !name.isEmpty else {
            return .failure(HTTPResponseBox(error(400, BinanceErrorCode.mandatoryParamEmptyOrMalformed,
                                                  "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")))
        }
        guard let symbol = listed(name, now: now) else { return .failure(HTTPResponseBox(error(400, BinanceErrorCode.badSymbol, "Invalid symbol."))) }
        var limit = defaultLimit
        if let text = query["limit"] {
            guard let value = Int(text), (1...maxLimit).contains(value) else {
                return .failure(HTTPResponseBox(error(400, BinanceErrorCode.invalidParameter, "Data sent for parameter 'limit' is not valid.")))
            }
            limit = value
        }
        var times: [Int64?] = [nil, nil]
        for (i, key) in ["startTime", "endTime"].enumerated() {
            guard let text = query[key] else { continue }
            guard let value = Int64(text), value >= 0 else {
                return .failure(HTTPResponseBox(error(400, BinanceErrorCode.invalidParameter, "Data sent for parameter '\(key)' is not valid.")))
            }
            times[i] = value
        }
        if let s = times[0], let e = times[1], s > e {
            return .failure(HTTPResponseBox(error(400, -1128, "Combination of optional parameters invalid.")))
        }
        return .success((symbol, times[0], times[1], limit))
    }

    /// GET /fapi/v1/fundingRate: limit default 100, max 1000; ascending; "If startTime and endTime are not sent,
    /// the most recent records are returned"; records before listing do not exist.
    private func fundingRates(query: [String: String], now: Int64) -> HTTPResponse {
        switch common(query, now: now, maxLimit: FundingRate.maxLimit, defaultLimit: FundingRate.defaultLimit) {
        case .failure(let box): return box.response
        case .success(let (symbol, start, end, limit)):
            let rows: [FundingRate]
            if let start {
                rows = market.fundingRates(symbol: symbol, start: start, end: end ?? now, limit: limit, now: now)
            } else {
                let all = market.fundingRates(symbol: symbol, start: max(symbol.listedAt, (end ?? now) - Int64(limit) * SimulatedMarket.fundingIntervalMilliseconds),
                                              end: end ?? now, limit: .max, now: now)
                rows = Array(all.suffix(limit))
            }
            let body = rows.map { r in
                "{\"symbol\":\"\(symbol.name)\",\"fundingRate\":\"\(r.fundingRate)\",\"fundingTime\":\(r.fundingTime),\"markPrice\":\"\(r.markPrice?.text ?? "")\"}"
            }.joined(separator: ",")
            return json(200, "[\(body)]")
        }
    }

    /// GET aggTrades: limit default 500, max 1000; "If startTime and endTime are sent, time between startTime and
    /// endTime must be less than 1 hour" (else -1127); by `fromId` inclusive; without parameters the most recent.
    private func aggTrades(market m: Market, query: [String: String], now: Int64) -> HTTPResponse {
        switch common(query, now: now, maxLimit: AggTrade.maxLimit, defaultLimit: 500) {
        case .failure(let box): return box.response
        case .success(let (symbol, start, end, limit)):
            if let start, let end, end - start >= AggTrade.maxWindowMilliseconds {
                return error(400, -1127, "More than 1 hours between startTime and endTime.")
            }
            var fromId: Int64?
            if let text = query["fromId"] {
                guard let value = Int64(text), value >= 0 else {
                    return error(400, BinanceErrorCode.invalidParameter, "Data sent for parameter 'fromId' is not valid.")
                }
                fromId = value
            }
            // startTime alone reads its hour; endTime alone the hour before it.
            let windowEnd = end ?? start.map { $0 + AggTrade.maxWindowMilliseconds - 1 }
            let windowStart = start ?? end.map { $0 - AggTrade.maxWindowMilliseconds + 1 }
            let rows = market.aggTrades(symbol: symbol, fromId: fromId, start: fromId == nil ? windowStart : nil,
                                        end: fromId == nil ? windowEnd : nil, limit: limit, now: now)
            let body = rows.map { t in
                "{\"a\":\(t.id),\"p\":\"\(t.price)\",\"q\":\"\(t.quantity)\",\"f\":\(t.firstTradeId),\"l\":\(t.lastTradeId),"
                    + "\"T\":\(t.time),\"m\":\(t.isBuyerMaker)" + (m == .spot ? ",\"M\":true}" : "}")
            }.joined(separator: ",")
            return json(200, "[\(body)]")
        }
    }

    /// GET exchangeInfo: server time, REQUEST_WEIGHT rule, symbols.
    private func exchangeInfo(market: Market, now: Int64) -> HTTPResponse {
        let rule = ledgers[market]!.rule
        let (interval, num): (String, Int64) = rule.windowMilliseconds % 60_000 == 0
            ? ("MINUTE", rule.windowMilliseconds / 60_000) : ("SECOND", max(1, rule.windowMilliseconds / 1000))
        // Each market lists its own; COIN-M lists a delivery contract until it delivers, with its pair, contract type and dates.
        let nextDelivery = self.market.symbols.values.compactMap(\.deliveredAt).filter { $0 > now }.min()
        let symbols = self.market.symbols.values.filter { ($0.market == .coinm) == (market == .coinm) && ($0.deliveredAt.map { $0 > now } ?? true) }
            .sorted { $0.name < $1.name }.map { s in
                let status = (s.delistedAt.map { $0 <= now } ?? false) ? "SETTLING" : "TRADING"
                guard market == .coinm else { return "{\"symbol\":\"\(s.name)\",\"status\":\"\(status)\"}" }
                let pair = s.name.split(separator: "_").first.map(String.init) ?? s.name
                let type = s.deliveredAt == nil ? "PERPETUAL" : s.deliveredAt == nextDelivery ? "CURRENT_QUARTER" : "NEXT_QUARTER"
                return "{\"symbol\":\"\(s.name)\",\"pair\":\"\(pair)\",\"contractType\":\"\(type)\",\"deliveryDate\":\(s.deliveredAt ?? 4_133_404_800_000),"
                    + "\"onboardDate\":\(s.listedAt),\"contractStatus\":\"\(status)\",\"contractSize\":\(s.contractSize ?? 0)}"
            }.joined(separator: ",")
        return json(200, """
            {"timezone":"UTC","serverTime":\(now),"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"\(interval)",\
            "intervalNum":\(num),"limit":\(rule.limit)},{"rateLimitType":"ORDERS","interval":"MINUTE","intervalNum":1,\
            "limit":1200}],"symbols":[\(symbols)]}
            """)
    }

    static func encode(_ rows: [Kline]) -> String {
        var out = "["
        out.reserveCapacity(rows.count * 180)
        for (i, k) in rows.enumerated() {
            if i > 0 { out += "," }
            out += "[\(k.openTime),\"\(k.open)\",\"\(k.high)\",\"\(k.low)\",\"\(k.close)\",\"\(k.volume)\",\(k.closeTime),"
            out += "\"\(k.quoteAssetVolume)\",\(k.numberOfTrades),\"\(k.takerBuyBaseAssetVolume)\",\"\(k.takerBuyQuoteAssetVolume)\",\"0\"]"
        }
        return out + "]"
    }

    private func json(_ status: Int, _ body: String) -> HTTPResponse {
        HTTPResponse(statusCode: HTTPStatusCode(status, phrase: Self.phrase(status)),
                     headers: [.contentType: "application/json"], body: Data(body.utf8))
    }

    private func error(_ status: Int, _ code: Int, _ message: String) -> HTTPResponse {
        let escaped = message.replacingOccurrences(of: "\"", with: "\\\"")
        return json(status, "{\"code\":\(code),\"msg\":\"\(escaped)\"}")
    }

    /// Adds the used-weight header every answer carries, and counts the status.
    private func finish(_ response: HTTPResponse, market: Market?) -> HTTPResponse {
        var response = response
        stats.byStatus["\(response.statusCode.code)", default: 0] += 1
        if let market {
            var ledger = ledgers[market]!
            ledger.roll(clock.now())
            ledgers[market] = ledger
            response.headers[HTTPHeader(ledger.rule.usedWeightHeader.uppercased())] = "\(ledger.used)"
        }
        return response
    }

    static func phrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 418: "I'm a teapot"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

/// An error answer carried through `Result`.
struct HTTPResponseBox: Error, @unchecked Sendable {
    let response: HTTPResponse
    init(_ response: HTTPResponse) { self.response = response }
}

/// Bytes that end in an error: the server then closes the connection mid-body.
struct FailingBytes: AsyncBufferedSequence, Sendable {
    typealias Element = UInt8
    let bytes: [UInt8]


    struct AsyncIterator: AsyncBufferedIteratorProtocol {
        var bytes: [UInt8]
        var sent = false
        mutating func next() async throws -> UInt8? {
            guard !bytes.isEmpty else { throw SimulatedConnectionDrop() }
            return bytes.removeFirst()
        }
        mutating func nextBuffer(suggested count: Int) async throws -> [UInt8]? {
            if !sent, !bytes.isEmpty {
                sent = true
                return bytes
            }
            throw SimulatedConnectionDrop()
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(bytes: bytes) }
}

/// Thrown mid-body to make the server drop the connection.
struct SimulatedConnectionDrop: Error {}
