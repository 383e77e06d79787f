import Foundation

/// Runs the project's own official-schema validator, `scripts/validate_otlp.py` (hex ids, strict protobuf JSON), on
/// what an exporter really sent. Needs `pip install opentelemetry-proto protobuf` (make test installs them).
public enum OTLPValidation {
    public struct Result: Sendable {
        public let passed: Bool
        public let output: String
    }

    public static func validateTraces(_ bodies: [Data]) throws -> Result {
        try run(signal: "traces", bodies: bodies)
    }

    public static func validateMetrics(_ bodies: [Data]) throws -> Result {
        try run(signal: "metrics", bodies: bodies)
    }

    static func run(signal prefix: String, bodies: [Data]) throws -> Result {
        let script = Programs.packageRoot.appendingPathComponent("scripts/validate_otlp.py").path
        guard FileManager.default.fileExists(atPath: script) else { throw TestSetupError("validator \(script) is missing") }
        guard !bodies.isEmpty else { return Result(passed: false, output: "no \(prefix) bodies were received") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("otlp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var files: [String] = []
        for (i, body) in bodies.enumerated() {
            let file = dir.appendingPathComponent("\(prefix)-\(i).json")
            try body.write(to: file)
            files.append(file.path)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, prefix] + files
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Result(passed: process.terminationStatus == 0, output: output)
    }
}
