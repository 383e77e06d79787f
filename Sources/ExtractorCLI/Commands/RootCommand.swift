import ArgumentParser
import BuildInfo
import Tracing

/// `binance-extractor`: the root command. Parsing and `--help` only; `ExtractorCLI.run` executes.
struct RootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "binance-extractor",
        abstract: "Keeps a MariaDB or PostgreSQL copy of Binance market history complete, exact and current.",
        discussion: """
        Every option falls back to an environment variable, then to a default, as shown in each command's help.
        Exit status: 0 every unit succeeded; 1 some unit failed or the run was interrupted (run again to complete);
        2 bad configuration or input (nothing was written); 3 (audit) the copy differs from Binance.
        """,
        version: BuildInfo.version,
        subcommands: [KlinesCommand.self, FollowCommand.self, GapsCommand.self, FundingCommand.self, TradesCommand.self, MetricsCommand.self, CoverageCommand.self,
                      AuditCommand.self,
                      MigrateCommand.self])
}

/// A subcommand: parsed by ArgumentParser, run by `ExtractorCLI.run` inside the run's root span. A new command is a
/// new file in this folder that conforms, and one entry in `RootCommand`'s `subcommands`.
protocol ExtractorCommand: ParsableCommand, Sendable {
    func run(environment: [String: String], context: RunContext, span: any Span) async -> Int32
}

extension ExtractorCommand {
    /// The command's name, as typed (`klines`): the root span's name.
    static var name: String { configuration.commandName ?? _commandName }
}
