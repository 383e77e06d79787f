import Foundation
import Logging
import Clocks
import ServiceLifecycle

/// The one place SIGTERM and SIGINT are handled.
///
/// The work runs as a service in a `ServiceGroup` that turns either signal into a graceful shutdown; the shutdown
/// cancels the work, whose units then stop fetching, flush what they fetched, and return. Cancellation aborts
/// in-flight HTTP transfers, so this normally takes well under a second. If it takes longer than
/// `deadlineSeconds` (a database that stopped answering), `onDeadline` ends the process: Kubernetes sends SIGKILL
/// after its grace period anyway, and a batch is one atomic statement, so nothing half-written can remain.
enum GracefulRun {
    static func run<T: Sendable>(logger: Logger, deadlineSeconds: Int, shutdown: ShutdownDeadline? = nil,
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
