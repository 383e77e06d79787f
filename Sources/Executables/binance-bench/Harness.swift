import BinanceAPI
import BinanceSimulator
import BuildInfo
import Foundation
import PostgresStore
import MariaDBStore
import StoreKit

// What the benchmark runs its rows with: the programs it measures, binance-sim, throwaway databases.

struct Measured {
    var status: Int32
    var wall: Double
    var cpu: Double
    var maxRSSMiB: Double
    var stdout: String
}

/// The user's default environment: this process's, without any OpenTelemetry variable (a figure taken with telemetry
/// tuned or turned off would not be what a user gets).
let defaultEnvironment = env.filter { !$0.key.hasPrefix("OTEL_") }

/// Runs a program to its end in the default environment plus `extra`; wall time, CPU time and peak resident memory
/// are the child's own (wait4).
func measure(_ program: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> Measured {
    let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).out").path
    let start = Date()
    let pid = try spawn(program, arguments, environment: extra, stdout: outFile)
    var status: Int32 = 0
    var usage = rusage()
    // Peak memory from the child's own VmHWM: Linux carries ru_maxrss across exec, so wait4's figure would include
    // this (larger) benchmark process.
    var peakKiB = 0.0
    while wait4(pid, &status, WNOHANG, &usage) == 0 {
        if let kib = procKiB(pid, "status", "VmHWM:") { peakKiB = max(peakKiB, kib) }
        usleep(5_000)
    }
    let wall = Date().timeIntervalSince(start)
    let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    let out = (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(atPath: outFile)
    return Measured(status: (status >> 8) & 0xff, wall: wall, cpu: cpu, maxRSSMiB: peakKiB / 1024, stdout: out)
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// binance-sim as a child process; returns its base URL.
final class Simulator {
    let process = Process()
    let url: String
    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "\(binDir)/binance-sim")
        process.arguments = ["--port", "0"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(10) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { throw BenchError("binance-sim exited") }
            line.append(chunk)
        }
        url = String(decoding: line, as: UTF8.self).components(separatedBy: "listening on ").last!.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    func stats() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(string: url + "/sim/stats")!)
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }
    func stop() { process.terminate(); process.waitUntilExit() }
}

func database(_ name: String) async throws -> DatabaseURI {
    let admin = try DatabaseURI(parsing: adminURIText)
    let pool = ConnectionPool(uri: admin, size: 1)
    defer { pool.shutdown() }
    _ = try await pool.withConnection { db in
        try db.execute("DROP DATABASE IF EXISTS `\(name)`")
        return try db.execute("CREATE DATABASE `\(name)`")
    }
    return admin.with(database: name)
}

/// A PostgreSQL database of `name`, dropped and made again.
func freshPostgresDatabase(_ name: String, admin text: String) async throws -> PostgresURI {
    let admin = try PostgresURI(parsing: text)
    let pool = PostgresPool(uri: admin, size: 1)
    defer { pool.shutdown() }
    _ = try await pool.withConnection { db in
        try db.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        return try db.execute("CREATE DATABASE \(name)")
    }
    var uri = admin
    uri.database = name
    return uri
}

/// `2024-01-31`: the date form --start and --end take.
func day(_ ms: Int64) -> String { String(UTCCalendar.iso8601(ms).prefix(10)) }

func uriText(_ uri: DatabaseURI) -> String { "mysql://\(uri.user):\(uri.password)@\(uri.host):\(uri.port)/\(uri.database)" }

func summary(_ stdout: String) -> [String: Any] {
    let line = stdout.split(separator: "\n").last.map(String.init) ?? "{}"
    return ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["summary"] as? [String: Any] ?? [:]
}

/// A long-running program (`follow`) as a child: its pid for CPU and memory readings, stopped with SIGTERM.
final class Running {
    let pid: pid_t
    let outFile: String

    init(_ program: String, _ arguments: [String], environment extra: [String: String] = [:]) throws {
        outFile = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).out").path
        pid = try spawn(program, arguments, environment: extra, stdout: outFile)
    }

    /// CPU seconds so far (user + system, from /proc/PID/stat).
    var cpuSeconds: Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, utime 14, stime 15 (1-based over the whole line).
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Peak resident memory so far (VmHWM), MiB.
    var peakMiB: Double { (procKiB(pid, "status", "VmHWM:") ?? 0) / 1024 }

    /// Resident memory now (VmRSS) and the private part of it (anonymous pages: what is not the shared code of the
    /// binary and its libraries), MiB.
    var residentMiB: (all: Double, private: Double) {
        ((procKiB(pid, "status", "VmRSS:") ?? 0) / 1024, (procKiB(pid, "smaps_rollup", "Anonymous:") ?? 0) / 1024)
    }

    /// SIGTERM, then its exit status and standard output.
    func stop() -> (status: Int32, stdout: String) {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let out = (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: outFile)
        return ((status >> 8) & 0xff, out)
    }
}

/// Starts `program` in the default environment plus `extra`, its standard output into the file `stdout` and its
/// standard error discarded; returns its pid.
func spawn(_ program: String, _ arguments: [String], environment extra: [String: String], stdout: String) throws -> pid_t {
    let environment = defaultEnvironment.merging(extra) { _, new in new }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, program, &actions, nil, argv, envp) == 0 else { throw BenchError("cannot start \(program)") }
    return pid
}

/// A `KEY:  N kB` figure of `/proc/PID/FILE` (status, smaps_rollup), in KiB; nil when it cannot be read.
func procKiB(_ pid: pid_t, _ file: String, _ key: String) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/\(file)", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
    return Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
}

/// GET on 127.0.0.1: the status and body (nil when nothing answers).
func localGet(port: UInt16, path: String) -> (status: Int, body: String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }
    let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        data += buffer[0..<n]
    }
    let text = String(decoding: data, as: UTF8.self)
    guard let statusText = text.split(separator: " ").dropFirst().first, let status = Int(statusText) else { return nil }
    let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
    return (status, body)
}

/// A port free a moment ago on 127.0.0.1.
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return UInt16(bigEndian: address.sin_port)
}
