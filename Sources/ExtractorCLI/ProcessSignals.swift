import Foundation
import Telemetry

/// SIGTERM and SIGINT outside the graceful part of a run, for the `binance-extractor` process (tests that run the
/// program in-process install nothing).
///
/// - Before the units start (parsing, connecting to the database, reading exchangeInfo): nothing has been fetched or
///   written, so the process ends at once with the status of an interrupted run (1). A connect that hangs cannot
///   hold it.
/// - While units run, the first signal is `GracefulRun`'s (stop fetching, flush, summarise); a second one ends the
///   process at once, with status 1: a batch is one atomic statement, so only whole batches are stored.
/// - After the units (summary, telemetry flush): a signal ends the process at once, with status 1.
public final class ProcessSignals: @unchecked Sendable {
    enum Phase: Sendable { case setup, running(signalled: Bool), finishing }

    /// The process's one set of handlers; its state is behind its lock.
    static let shared = ProcessSignals()

    private let lock = NSLock()
    private var phase = Phase.setup
    private var sources: [any DispatchSourceSignal] = []

    private init() {}

    /// Installs the handlers; call once, first thing in `main`.
    public static func install() {
        shared.lock.withLock {
            guard shared.sources.isEmpty else { return }
            for number in [SIGTERM, SIGINT] {
                signal(number, SIG_IGN)  // delivered to the dispatch sources instead of ending the process
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { shared.received(number) }
                source.resume()
                shared.sources.append(source)
            }
        }
    }

    /// `GracefulRun` takes the first signal from here on.
    static func unitsStarted() { shared.lock.withLock { shared.phase = .running(signalled: false) } }

    /// The units are done; what is left is printing and flushing.
    static func unitsFinished() { shared.lock.withLock { shared.phase = .finishing } }

    private func received(_ number: Int32) {
        let name = number == SIGINT ? "SIGINT" : "SIGTERM"
        let message: String? = lock.withLock {
            switch phase {
            case .setup:
                return "\(name) before any unit started: nothing was fetched or written; exiting (status 1, run again to continue)"
            case .running(signalled: false):
                phase = .running(signalled: true)
                return nil
            case .running(signalled: true):
                return "second \(name): exiting now without waiting for the flush; only whole batches are stored (status 1, run again to continue)"
            case .finishing:
                return "\(name) while finishing: the units are done; exiting now (status 1)"
            }
        }
        guard let message else { return }
        LineSink.standardError.write("{\"ts\":\"\(LogLineHandler.timestamp())\",\"level\":\"warning\",\"logger\":\"binance-extractor\",\"msg\":\(LogLineHandler.quote(message))}\n")
        exit(ExitStatus.unitsFailed)
    }
}
