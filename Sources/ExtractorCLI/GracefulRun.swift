import Foundation
import Logging
import Clocks
import ServiceLifecycle

/// While the units run, SIGTERM and SIGINT shut them down gracefully (before and after, `ProcessSignals` ends the
/// process at once).
///
/// The work runs as a service of a `ServiceGroup` nested in the run's group (which turns either signal into a graceful
/// shutdown, inherited here), beside the
/// resources it uses (the store's pool, the HTTP client), each a service that closes when the group shuts down, after
/// the work: nothing is closed by a `defer` while the work may still use it. The shutdown cancels the work, whose units
/// then stop fetching, flush what they fetched, and return; cancellation aborts in-flight HTTP transfers, so this
/// normally takes well under a second. The group's `maximumGracefulShutdownDuration` is `deadlineSeconds`; a blocking
/// C call (a database that stopped answering) outlasts any task cancellation, so at the same deadline `onDeadline`
/// ends the process (swift-service-lifecycle's own last resort, `maximumCancellationDuration`, is a `fatalError`):
/// Kubernetes sends SIGKILL after its grace period anyway, and a batch is one atomic statement, so nothing
/// half-written can remain.
enum GracefulRun {
    static func run<T: Sendable>(logger: Logger, deadlineSeconds: Int, shutdown: ShutdownDeadline? = nil, closing resources: [ClosingService] = [],
                                 onDeadline: @escaping @Sendable () -> Void, _ work: @escaping @Sendable () async -> T) async -> T {
        let box = ResultBox<T>()
        let watchdog = ResultBox<Task<Void, Never>>()
        // Outside this call, `ProcessSignals` ends the process at once on a signal; inside, the first one is ours.
        ProcessSignals.unitsStarted()
        defer {
            watchdog.get()?.cancel()
            ProcessSignals.unitsFinished()
        }
        let service = WorkService(logger: logger, onShutdown: {
            // Real time, as the watchdog's: a shutdown is bounded in the world's seconds, whatever clock the run plans with.
            shutdown?.requested(at: SystemClock().now(), seconds: deadlineSeconds)
            watchdog.set(Task.detached {
                try? await Task.sleep(nanoseconds: UInt64(deadlineSeconds) * 1_000_000_000)
                guard !Task.isCancelled else { return }
                logger.error("shutdown did not finish within --shutdown-timeout; exiting now", metadata: ["timeout_s": "\(deadlineSeconds)"])
                onDeadline()
            })
        }) {
            let value = await cancelWhenGracefulShutdown { await work() }
            box.set(value)
        }
        // Services shut down in reverse order: the work first, then the resources it used.
        var configuration = ServiceGroupConfiguration(
            services: resources.map { .init(service: $0) } + [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
            // The signals are the run's group's (`ExtractorCLI.run`): this group inherits its graceful shutdown.
            logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(deadlineSeconds)
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            logger.warning("service group ended with an error", metadata: ["error": "\(error)"])
        }
        return box.get()!
    }
}

/// A resource of the run (the store's pool, the HTTP client) as a service: it closes once the group shuts down.
struct ClosingService: Service {
    let close: @Sendable () -> Void

    func run() async throws {
        try? await gracefulShutdown()
        close()
    }
}

private struct WorkService: Service {
    let logger: Logger
    let onShutdown: @Sendable () -> Void
    let body: @Sendable () async -> Void

    func run() async throws {
        await withGracefulShutdownHandler {
            await body()
        } onGracefulShutdown: {
            logger.warning("shutdown requested: stopping fetches and flushing what was fetched")
            onShutdown()
        }
    }
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private var value: T?
    private let lock = NSLock()
    func set(_ v: T) { lock.withLock { value = v } }
    func get() -> T? { lock.withLock { value } }
}
