import ArgumentParser
import BinanceAPI
import Clocks
import Foundation
import HTTPTransport
import Logging
import Pipeline
import ServiceLifecycle
import StoreKit
import Telemetry
import Tracing

/// Exit statuses, as documented in `--help` and the README.
public enum ExitStatus {
    public static let success: Int32 = 0
    /// Some unit failed, or the run was interrupted: run again to complete.
    public static let unitsFailed: Int32 = 1
    /// Bad configuration or input; nothing was written.
    public static let badConfiguration: Int32 = 2
    /// `audit`: the copy differs from Binance's record (after `--fix`, only where something is left unrepaired).
    public static let differences: Int32 = 3
}

/// The wall-clock time (Unix ms) by which a requested shutdown must be over; nil while none was asked for.
public final class ShutdownDeadline: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64?
    public init() {}
    public var deadline: Int64? { lock.withLock { value } }
    /// The first request sets the deadline; later ones do not move it.
    func requested(at now: Int64, seconds: Int) { lock.withLock { if value == nil { value = now + Int64(seconds) * 1000 } } }
}

/// What a run talks to, injectable for tests.
public struct RunContext: Sendable {
    public var clock: any WallClock
    public var output: LineSink
    public var errors: LineSink
    public var outputIsTerminal: Bool
    public var errorsIsTerminal: Bool
    /// What happens when a shutdown outlasts `--shutdown-timeout`: the program exits with status 1 (a batch is
    /// one atomic statement, so no half-written batch can remain); tests observe instead.
    public var onShutdownDeadline: @Sendable () -> Void
    /// How log lines look; nil until `ExtractorCLI.run` resolves `LOG_FORMAT` (then JSON unless on a terminal).
    public var logFormat: LogFormat?
    /// Set when a shutdown was asked for: the moment by which everything after it, the telemetry flush included, is done.
    public let shutdown = ShutdownDeadline()

    public init(clock: any WallClock = SystemClock(), output: LineSink = .standardOutput, errors: LineSink = .standardError,
                outputIsTerminal: Bool? = nil, errorsIsTerminal: Bool? = nil,
                onShutdownDeadline: @escaping @Sendable () -> Void = { exit(ExitStatus.unitsFailed) }) {
        self.onShutdownDeadline = onShutdownDeadline
        self.clock = clock
        self.output = output
        self.errors = errors
        self.outputIsTerminal = outputIsTerminal ?? output.isTerminal
        self.errorsIsTerminal = errorsIsTerminal ?? errors.isTerminal
    }
}

/// The `binance-extractor` program: parses, resolves configuration, runs, and returns the exit status.
public enum ExtractorCLI {
    public static func run(arguments: [String], environment: [String: String], context: RunContext = RunContext()) async -> Int32 {
        // A reader that closes our stdout or stderr (`| head -1`) must not kill a run that is writing data: writes to it
        // fail with EPIPE instead (LineSink drops them), and the exit status reflects the data.
        signal(SIGPIPE, SIG_IGN)
        let command: any ParsableCommand
        do {
            command = try RootCommand.parseAsRoot(arguments)
        } catch {
            let code = RootCommand.exitCode(for: error)
            let message = RootCommand.fullMessage(for: error)
            if code == .success {
                context.output.write(helpText(arguments) ?? message)
                context.output.write("\n")
                return ExitStatus.success
            }
            context.errors.write("error: " + message + "\n")
            return ExitStatus.badConfiguration
        }
        guard let command = command as? any ExtractorCommand else {
            // `--help` and `help` parse into ArgumentParser's own help command.
            context.output.write((helpText(arguments) ?? RootCommand.helpMessage()) + "\n")
            return ExitStatus.success
        }
        let name = type(of: command).name
        // Log lines: `LOG_FORMAT`, else text for a person at a terminal and JSON for whatever reads a pipe.
        var context = context
        do { context.logFormat = try ConfigurationReader.logFormat(environment, terminal: context.errorsIsTerminal) } catch {
            return fail(error, context: context)
        }
        // Every run exports its trace: one root span for the command, everything else beneath it.
        let level = environment["LOG_LEVEL"].flatMap(ConfigurationReader.level(named:)) ?? .info
        let telemetry = TelemetrySession(configuration: TelemetryConfiguration(environment: environment),
                                         logger: makeLogger("telemetry", level: level, context: context))
        // One service group for the run: the command (its root span, everything beneath it) and the telemetry that exports
        // its trace once the command is done. SIGTERM and SIGINT shut it down gracefully: the command's units stop and
        // flush (their own group inherits the shutdown), then the trace is exported, bounded by `--shutdown-timeout`.
        let status = StatusBox()
        let runContext = context
        let commandService = CommandService {
            status.value = await telemetry.run {
                await withSpan(name, context: telemetry.rootContext, ofKind: .internal) { span in
                    span.attributes["binance_extractor.command"] = name
                    let status = await command.run(environment: environment, context: runContext, span: span)
                    span.attributes["process.exit.code"] = Int64(status)
                    if status != ExitStatus.success {
                        span.setStatus(SpanStatus(code: .error, message: "exit status \(status)"))
                    }
                    return status
                }
            }
        }
        // After SIGTERM, `--shutdown-timeout` bounds the whole of what is left, the export of the run's trace included: a
        // collector that does not answer cannot hold the process past it (and Kubernetes' grace period after it).
        let telemetryService = TelemetryService(session: telemetry, deadline: context.shutdown)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: telemetryService), .init(service: commandService, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: makeLogger("lifecycle", level: level, context: context)))
        do { try await group.run() } catch {
            context.errors.write("error: the run's service group ended with \(error)\n")
            return ExitStatus.unitsFailed
        }
        return status.value ?? ExitStatus.unitsFailed
    }

    /// Help for the subcommand named in `arguments` (`klines --help`, `help migrate`), or nil for the root.
    static func helpText(_ arguments: [String]) -> String? {
        let words = arguments.first == "help" ? Array(arguments.dropFirst()) : arguments
        let subcommands = RootCommand.configuration.subcommands.compactMap { $0 as? any ExtractorCommand.Type }
        guard let name = words.first, let type = subcommands.first(where: { $0.name == name }) else { return nil }
        return RootCommand.helpMessage(for: type)
    }

    static func makeLogger(_ label: String, level: Logger.Level, context: RunContext) -> Logger {
        Logger(label: label) { label in LogLineHandler(label: label, level: level, format: context.logFormat ?? .json, sink: context.errors) }
    }

    static func fail(_ error: ConfigurationError, context: RunContext) -> Int32 {
        context.errors.write("error: \(error.message)\n")
        return ExitStatus.badConfiguration
    }

    /// Says a storage failure and turns it into the exit status: a table that cannot take the rows, wrong
    /// credentials, an unknown or unreachable database are configuration (2); anything else is a failed run (1).
    static func storageFailure(_ error: any Error, context: RunContext) -> Int32 {
        context.errors.write("error: \(error)\n")
        switch error {
        case is SchemaError: return ExitStatus.badConfiguration
        case let error as StoreFailure:
            return error.isConfiguration || error.isConnectionLost ? ExitStatus.badConfiguration : ExitStatus.unitsFailed
        default: return ExitStatus.unitsFailed
        }
    }

}

/// The command of one run, as a service: it runs once; its end shuts the run's group down.
struct CommandService: Service {
    let body: @Sendable () async -> Void
    func run() async throws { await body() }
}

/// The run's telemetry as a service: it waits for the group to shut down (the command is done, or a signal came),
/// then exports what is left of the trace and the metrics, never past the end of a requested shutdown.
struct TelemetryService: Service {
    let session: TelemetrySession
    let deadline: ShutdownDeadline
    func run() async throws {
        // Meanwhile, every OTEL_METRIC_EXPORT_INTERVAL: the metrics so far (a `follow` runs for weeks).
        let interval = UInt64(session.configuration.metricExportIntervalMilliseconds) * 1_000_000
        let periodic = Task { [session] in
            while !Task.isCancelled {
                do { try await Task.sleep(nanoseconds: interval) } catch { return }
                await session.exportMetrics()
            }
        }
        try? await gracefulShutdown()
        periodic.cancel()
        await session.shutdown(notAfter: deadline.deadline)
    }
}

/// The command's exit status, set once by its service.
final class StatusBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Int32?
    var value: Int32? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
