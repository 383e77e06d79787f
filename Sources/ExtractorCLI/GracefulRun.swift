import Foundation
import Logging
import ServiceLifecycle

/// The one place SIGTERM and SIGINT are handled.
///
/// The work runs as a service in a `ServiceGroup` that turns either signal into a graceful shutdown; the shutdown
/// cancels the work, whose units then stop fetching, flush what they fetched, and return. A second signal is
/// not needed: cancellation aborts in-flight HTTP transfers, so the process ends within seconds.
enum GracefulRun {
    static func run<T: Sendable>(logger: Logger, _ work: @escaping @Sendable () async -> T) async -> T {
        let box = ResultBox<T>()
        let service = WorkService(logger: logger) {
            let value = await cancelWhenGracefulShutdown { await work() }
            box.set(value)
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            logger.warning("service group ended with an error", metadata: ["error": "\(error)"])
        }
        return box.get()!
    }
}

private struct WorkService: Service {
    let logger: Logger
    let body: @Sendable () async -> Void

    func run() async throws {
        await withGracefulShutdownHandler {
            await body()
        } onGracefulShutdown: {
            logger.warning("shutdown requested: stopping fetches and flushing what was fetched")
        }
    }
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private var value: T?
    private let lock = NSLock()
    func set(_ v: T) { lock.withLock { value = v } }
    func get() -> T? { lock.withLock { value } }
}
