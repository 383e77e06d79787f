// swift-tools-version:6.0
import PackageDescription

/// binance-extractor: keeps a MariaDB or PostgreSQL copy of Binance market history complete, exact and current.
///
/// Layers (each a target): C bridges -> BinanceAPI (protocol, pure) / BinanceArchive (files) / HTTPTransport (libcurl)
/// / StoreKit (the store boundary, no C) -> Stores/MariaDB and Stores/PostgreSQL (each the only user of its C library)
/// -> Pipeline (datasets, actors, supervisor, stream following; links no database) -> BinanceStreams (WebSocket over
/// swift-websocket: the one target on SwiftNIO) -> Telemetry -> ExtractorCLI (commands) -> executables.
/// See README.md, "Source layout".
let package = Package(
    name: "binance-extractor",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "binance-extractor", targets: ["binance-extractor"]),
        .executable(name: "binance-sim", targets: ["binance-sim"]),
        .executable(name: "otlp-receiver", targets: ["otlp-receiver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.2"),
    ],
    targets: [
        // C bridges
        .systemLibrary(name: "CMariaDB", path: "Sources/CBridges/CMariaDB"),
        .systemLibrary(name: "CCurl", path: "Sources/CBridges/CCurl"),
        .target(name: "CCurlShim", dependencies: ["CCurl"], path: "Sources/CBridges/CCurlShim"),
        .systemLibrary(name: "CZlib", path: "Sources/CBridges/CZlib"),
        .systemLibrary(name: "CCrypto", path: "Sources/CBridges/CCrypto"),
        .systemLibrary(name: "CPostgres", path: "Sources/CBridges/CPostgres"),

        // The one version of everything the project builds.
        .target(name: "BuildInfo", path: "Sources/BuildInfo"),
        // Threads the project owns, for blocking C calls.
        .target(name: "BlockingThreads", path: "Sources/BlockingThreads"),
        // Wall clocks: the system's, and a manual one for tests.
        .target(name: "Clocks", path: "Sources/Clocks"),
        // Binance protocol: markets, intervals, weights, requests, parsing. Pure.
        .target(name: "BinanceAPI", path: "Sources/BinanceAPI"),
        // Binance's public archives (data.binance.vision): file names, CHECKSUM (SHA-256 by libcrypto), zip (zlib), CSV.
        .target(name: "BinanceArchive", dependencies: ["BinanceAPI", "CZlib", "CCrypto"], path: "Sources/BinanceArchive"),
        // HTTP over libcurl.
        .target(name: "HTTPTransport", dependencies: ["CCurl", "CCurlShim", "BlockingThreads", "BuildInfo"], path: "Sources/HTTPTransport"),
        // The store boundary: the protocols the pipeline calls, the SQL-free table catalogue, store-neutral errors and
        // reports, the session pool. No C library.
        .target(name: "StoreKit", dependencies: [
            "BlockingThreads", "Clocks", "BinanceAPI", .product(name: "Logging", package: "swift-log"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], path: "Sources/StoreKit"),
        // MariaDB over Connector/C: the only user of CMariaDB.
        .target(name: "MariaDBStore", dependencies: [
            "CMariaDB", "StoreKit", "BlockingThreads", "BinanceAPI", .product(name: "Logging", package: "swift-log"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], path: "Sources/Stores/MariaDB"),
        // PostgreSQL over libpq: the only user of CPostgres.
        .target(name: "PostgresStore", dependencies: [
            "CPostgres", "StoreKit", "BlockingThreads", "BinanceAPI", .product(name: "Logging", package: "swift-log"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], path: "Sources/Stores/PostgreSQL"),
        // Traces (swift-distributed-tracing API, our own tracer and OTLP/HTTP JSON exporter), metrics, JSON logs.
        .target(name: "Telemetry", dependencies: [
            "HTTPTransport", "Clocks", "BuildInfo",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], path: "Sources/Telemetry"),
        // Actors and supervisor joining protocol and storage.
        .target(name: "Pipeline", dependencies: [
            "BinanceAPI", "BinanceArchive", "HTTPTransport", "StoreKit", "Telemetry", "Clocks",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], path: "Sources/Pipeline"),
        // Binance's WebSocket market streams over swift-websocket: the one target on SwiftNIO.
        .target(name: "BinanceStreams", dependencies: [
            "Pipeline", .product(name: "WSClient", package: "swift-websocket"), .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/BinanceStreams"),
        // The command line (library so tests can build configurations; executable is a thin main).
        .target(name: "ExtractorCLI", dependencies: [
            "Pipeline", "BinanceStreams", "HealthEndpoint", "StoreKit", "MariaDBStore", "PostgresStore", "Telemetry", "BinanceAPI", "HTTPTransport", "BuildInfo",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], path: "Sources/ExtractorCLI"),
        .executableTarget(name: "binance-extractor", dependencies: ["ExtractorCLI"], path: "Sources/Executables/binance-extractor"),

        // The Binance simulator.
        .target(name: "BinanceSimulator", dependencies: [
            "BinanceAPI", "BinanceArchive", "Clocks", .product(name: "FlyingFox", package: "FlyingFox"),
        ], path: "Sources/BinanceSimulator"),
        .executableTarget(name: "binance-sim", dependencies: [
            "BinanceSimulator", "BuildInfo", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/Executables/binance-sim"),

        // A small OTLP/HTTP receiver: tests export to it, `make run` shows the run's trace tree from it.
        // `follow`'s /healthz and /readyz (FlyingFox: Swift concurrency on BSD sockets, no SwiftNIO).
        .target(name: "HealthEndpoint", dependencies: [.product(name: "FlyingFox", package: "FlyingFox")], path: "Sources/HealthEndpoint"),
        .target(name: "OTLPReceiver", dependencies: [.product(name: "FlyingFox", package: "FlyingFox")], path: "Sources/OTLPReceiver"),
        .executableTarget(name: "otlp-receiver", dependencies: [
            "OTLPReceiver", "BuildInfo", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/Executables/otlp-receiver"),

        // `make bench`: throughput, budget use, memory and start-up, measured against binance-sim and MariaDB.
        .executableTarget(name: "binance-bench", dependencies: ["StoreKit", "MariaDBStore", "PostgresStore", "BinanceSimulator", "BinanceAPI", "BinanceArchive", "HTTPTransport", "BuildInfo"],
                          path: "Sources/Executables/binance-bench"),

        // Test support: MariaDB fixture, simulator launcher, process runner.
        .target(name: "TestSupport", dependencies: ["StoreKit", "MariaDBStore", "PostgresStore", "BinanceSimulator", "BinanceAPI", "Clocks", "OTLPReceiver"],
                path: "Tests/TestSupport"),
        .testTarget(name: "BinanceAPITests", dependencies: ["BinanceAPI"], path: "Tests/BinanceAPITests"),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "BinanceAPI", "ExtractorCLI", "Clocks", "StoreKit", "MariaDBStore", "Telemetry",
            "BlockingThreads",
            .product(name: "Tracing", package: "swift-distributed-tracing")], path: "Tests/PipelineTests"),
        .testTarget(name: "ArchiveTests", dependencies: ["BinanceArchive", "BinanceAPI"], path: "Tests/ArchiveTests"),
        .testTarget(name: "TelemetryTests", dependencies: [
            "Telemetry", "HTTPTransport", "Clocks", .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], path: "Tests/TelemetryTests"),
        .testTarget(name: "IntegrationTests", dependencies: [
            "TestSupport", "Pipeline", "StoreKit", "MariaDBStore", "BinanceSimulator", "ExtractorCLI", "HTTPTransport", "BinanceAPI", "Clocks",
            "Telemetry", "OTLPReceiver", "BuildInfo", "BinanceArchive", "PostgresStore", "BinanceStreams", "HealthEndpoint",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/IntegrationTests"),
    ]
)
