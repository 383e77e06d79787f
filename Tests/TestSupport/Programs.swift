import Foundation

/// The project's built executables, for tests that need a real process (signals, exit statuses).
public enum Programs {
    /// The package root, from this file's path.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `.build/debug/NAME` (or `BINANCE_BIN_DIR/NAME`), built by `swift build` before the tests run.
    public static func path(_ name: String) throws -> String {
        let dir = ProcessInfo.processInfo.environment["BINANCE_BIN_DIR"]
            ?? packageRoot.appendingPathComponent(".build/debug").path
        let path = (dir as NSString).appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSetupError("\(path) is missing: run `swift build` first (make test does)")
        }
        return path
    }

    /// Runs one of the project's scripts (`scripts/NAME`) to its end with `arguments` and more `environment`; returns
    /// what it printed, trimmed, or throws with what it said on standard error.
    @discardableResult
    public static func script(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let process = Process()
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [packageRoot.appendingPathComponent("scripts/\(name)").path] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestSetupError("scripts/\(name) \(arguments.joined(separator: " ")): \(errors)") }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A running child process with its output collected.
    public final class Child: @unchecked Sendable {
        public let process = Process()
        private let stdout = Pipe(), stderr = Pipe()
        private var outData = Data(), errData = Data()
        private let lock = NSLock()
        private let readers = DispatchGroup()
        private let exited = DispatchGroup()

        public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            var env = ProcessInfo.processInfo.environment
            env["OTEL_SDK_DISABLED"] = "true"  // unless a test asks for telemetry
            env["BINANCE_KLINES_SOURCE"] = env["BINANCE_KLINES_SOURCE"] ?? "rest"  // REST behaviour; archive tests ask for auto
            env.merge(environment) { _, new in new }
            process.environment = env
            process.standardOutput = stdout
            process.standardError = stderr
            // Termination is reported through the handler; waitUntilExit on several children at once can stall.
            exited.enter()
            process.terminationHandler = { [exited] _ in exited.leave() }
            try process.run()
            // Drain both pipes to the end on their own threads, so a chatty child never blocks on a full pipe.
            for (pipe, isOut) in [(stdout, true), (stderr, false)] {
                readers.enter()
                // Chunk by chunk, so a test can watch the output while the child runs.
                DispatchQueue.global().async { [self] in
                    let handle = pipe.fileHandleForReading
                    while true {
                        let chunk = handle.availableData
                        if chunk.isEmpty { break }
                        lock.withLock { if isOut { outData.append(chunk) } else { errData.append(chunk) } }
                    }
                    readers.leave()
                }
            }
        }

        public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

        /// Waits for the exit and the end of its output; returns the status. A child still running after `killAfter`
        /// seconds (hung: the test has failed anyway) is killed, so no test waits forever on one.
        public func wait(killAfter seconds: Double = 120) async -> Int32 {
            let pid = process.processIdentifier
            let deadline = DispatchWorkItem { [process] in if process.isRunning { kill(pid, SIGKILL) } }
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: deadline)
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                exited.notify(queue: .global()) {
                    self.readers.notify(queue: .global()) { c.resume() }
                }
            }
            deadline.cancel()
            return process.terminationStatus
        }

        public var output: String { lock.withLock { String(decoding: outData, as: UTF8.self) } }
        public var errors: String { lock.withLock { String(decoding: errData, as: UTF8.self) } }
    }
}
