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

    /// A running child process with its output collected.
    public final class Child: @unchecked Sendable {
        public let process = Process()
        private let stdout = Pipe(), stderr = Pipe()
        private var outData = Data(), errData = Data()
        private let lock = NSLock()

        public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            var env = ProcessInfo.processInfo.environment
            env.merge(environment) { _, new in new }
            process.environment = env
            process.standardOutput = stdout
            process.standardError = stderr
            stdout.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                self?.lock.withLock { self?.outData.append(d) }
            }
            stderr.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                self?.lock.withLock { self?.errData.append(d) }
            }
            try process.run()
        }

        public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

        /// Waits for the exit; returns the status.
        public func wait() async -> Int32 {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    self.process.waitUntilExit()
                    c.resume()
                }
            }
            stdout.fileHandleForReading.readabilityHandler = nil
            stderr.fileHandleForReading.readabilityHandler = nil
            lock.withLock {
                outData.append(stdout.fileHandleForReading.readDataToEndOfFile())
                errData.append(stderr.fileHandleForReading.readDataToEndOfFile())
            }
            return process.terminationStatus
        }

        public var output: String { lock.withLock { String(decoding: outData, as: UTF8.self) } }
        public var errors: String { lock.withLock { String(decoding: errData, as: UTF8.self) } }
    }
}
