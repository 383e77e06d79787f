import ExtractorCLI
import Foundation

// The allocator's policy for large buffers (archive downloads): see MemoryPolicy.
MemoryPolicy.apply()

// SIGTERM/SIGINT before, during and after the units: see ProcessSignals.
ProcessSignals.install()

// Thin entry point: everything, including exit statuses, lives in ExtractorCLI so tests can run it in-process.
let status = await ExtractorCLI.run(arguments: Array(CommandLine.arguments.dropFirst()),
                                    environment: ProcessInfo.processInfo.environment)
exit(status)
