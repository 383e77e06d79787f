import Foundation

/// Runs the official-schema validators on what an exporter really sent:
/// `../shared/tools/validate_otlp_json.py` for traces (hex ids, strict protobuf JSON), and
/// `scripts/validate_otlp_metrics.py` for metrics. Needs `pip install opentelemetry-proto protobuf` (make test does).
public enum OTLPValidation {
    public struct Result: Sendable {
        public let passed: Bool
        public let output: String
    }

    public static func validateTraces(_ bodies: [Data]) throws -> Result {
        let script = Programs.packageRoot.deletingLastPathComponent().appendingPathComponent("shared/tools/validate_otlp_json.py").path
        return try run(script: script, bodies: bodies, prefix: "traces")
    }

    public static func validateMetrics(_ bodies: [Data]) throws -> Result {
        let script = Programs.packageRoot.appendingPathComponent("scripts/validate_otlp_metrics.py").path
        return try run(script: script, bodies: bodies, prefix: "metrics")
    }

    static func run(script: String, bodies: [Data], prefix: String) throws -> Result {
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
        process.arguments = ["python3", script] + files
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Result(passed: process.terminationStatus == 0, output: output)
    }
}
