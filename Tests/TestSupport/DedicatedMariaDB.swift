import Foundation
import MariaDBStore
import StoreKit

/// A MariaDB server of one test's own (started with `scripts/mariadb.sh` on a free port), for tests that stop,
/// restart or freeze the server: the shared test server must not be disturbed.
public final class DedicatedMariaDB: @unchecked Sendable {
    public let directory: URL
    public private(set) var adminURI: DatabaseURI

    /// `serverArguments`: more mariadbd options (a test's TLS certificate, say).
    public init(serverArguments: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("bx-mariadb-\(UUID().uuidString.prefix(8))")
        adminURI = try DatabaseURI(parsing: "mysql://root:test@127.0.0.1:1/mysql")
        adminURI = try DatabaseURI(parsing: try Self.script(["start", directory.path, "auto"], extra: serverArguments))
    }

    /// `mysql://root:test@127.0.0.1:PORT/DATABASE`, created if missing.
    public func database(_ name: String) async throws -> DatabaseURI {
        let admin = ConnectionPool(uri: adminURI, size: 1)
        defer { admin.shutdown() }
        _ = try await admin.withConnection { try $0.execute("CREATE DATABASE IF NOT EXISTS `\(name)`") }
        return adminURI.with(database: name)
    }

    public func stop() throws { _ = try Self.script(["stop", directory.path]) }

    public func start() throws { _ = try Self.script(["start", directory.path, "auto"]) }

    /// SIGSTOP / SIGCONT: a server that stops answering without closing its sockets.
    public func freeze(_ frozen: Bool) throws {
        let pid = try String(contentsOf: directory.appendingPathComponent("mariadbd.pid"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        kill(pid_t(pid)!, frozen ? SIGSTOP : SIGCONT)
    }

    public func destroy() {
        try? freeze(false)
        try? stop()
        try? FileManager.default.removeItem(at: directory)
    }

    @discardableResult
    static func script(_ arguments: [String], extra: [String] = []) throws -> String {
        try Programs.script("mariadb.sh", arguments, environment: extra.isEmpty ? [:] : ["MARIADB_EXTRA_ARGS": extra.joined(separator: " ")])
    }
}
