import ArgumentParser
import BuildInfo
import Foundation
import OTLPReceiver

/// `otlp-receiver`: a local OTLP/HTTP receiver for development, and a viewer of what it received.
@main
struct OTLPReceiverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "otlp-receiver",
        abstract: "Receive OTLP/HTTP JSON on loopback and show traces as trees.",
        version: BuildInfo.version,
        subcommands: [Serve.self, Tree.self])

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept POST /v1/traces and /v1/metrics, saving each body in a folder.")
        @Option(help: "Port (0 picks a free one; the chosen port is printed).") var port: UInt16 = 4318
        @Option(help: "Folder for the received bodies.") var dir: String

        func run() async throws {
            let receiver = OTLPReceiver(directory: URL(fileURLWithPath: dir))
            let bound = try await receiver.start(port: port)
            FileHandle.standardOutput.write(Data("otlp-receiver listening on http://127.0.0.1:\(bound)\n".utf8))
            try await receiver.run()
        }
    }

    struct Tree: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a received trace as a tree of spans with durations.")
        @Argument(help: "Folder of received bodies.") var dir: String
        @Option(help: "Trace id (default: the newest trace).") var trace: String?

        func run() throws {
            let url = URL(fileURLWithPath: dir)
            let files = (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)) ?? []
            let bodies = files.filter { $0.lastPathComponent.hasPrefix("traces-") }.sorted { $0.path < $1.path }
                .compactMap { try? Data(contentsOf: $0) }
            print(TraceTree.render(bodies, traceID: trace), terminator: "")
        }
    }
}
