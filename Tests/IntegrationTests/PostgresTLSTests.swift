import Foundation
import PostgresStore
import TestSupport
import Testing

/// TLS to PostgreSQL (`sslmode`, `sslrootcert` in the URL) against a real server of the test's own, started with a
/// certificate the test makes.
@Suite("TLS to PostgreSQL", .timeLimit(.minutes(2)))
struct PostgresTLSTests {
    /// A CA, a server certificate it signs for 127.0.0.1, and an unrelated CA. The server's key belongs to the
    /// `postgres` user with mode 0600, as PostgreSQL requires.
    static func makeCertificates(in dir: URL) async throws {
        let child = try Programs.Child("/bin/bash", ["-c", """
            set -e; cd '\(dir.path)'; chmod 755 .
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bx-test-ca -keyout ca.key -out ca.pem 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
            chmod 644 server.pem ca.pem other.pem; chmod 600 server.key
            if [ "$(id -u)" = 0 ]; then chown postgres server.key server.pem; fi
            """])
        guard await child.wait() == 0 else { throw TestSetupError("openssl could not make the test certificates: \(child.errors)") }
    }

    /// Whether the session runs over TLS (`pg_stat_ssl`).
    func encrypted(_ uri: PostgresURI) async throws -> Bool {
        let pool = PostgresPool(uri: uri, size: 1)
        defer { pool.shutdown() }
        return try await pool.withConnection { try $0.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").first?.first ?? nil } == "t"
    }

    @Test("sslmode=verify-full with the test's CA connects over TLS; a wrong CA, or require against a server without TLS, is refused as configuration")
    func verifiedAndRefused() async throws {
        let dir = URL(fileURLWithPath: "/tmp").appendingPathComponent("bx-pgtls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try await Self.makeCertificates(in: dir)
        let script = Programs.packageRoot.appendingPathComponent("scripts/postgres.sh").path
        let server = dir.appendingPathComponent("server").path
        let admin = try DedicatedStore.startPostgres(directory: server, extraArguments:
            "-c ssl=on -c ssl_cert_file=\(dir.path)/server.pem -c ssl_key_file=\(dir.path)/server.key")
        // Stopped, and waited for, before the folder holding its data and keys is removed.
        func stop() async { _ = await (try? Programs.Child("/bin/bash", [script, "stop", server]))?.wait() }
        do {
            try await checks(admin: admin, dir: dir)
        } catch {
            await stop()
            throw error
        }
        await stop()
    }

    func checks(admin: PostgresURI, dir: URL) async throws {
        func uri(_ query: String) throws -> PostgresURI {
            try PostgresURI(parsing: "postgresql://postgres:test@127.0.0.1:\(admin.port)/postgres?\(query)")
        }
        #expect(try await encrypted(try uri("sslmode=verify-full&sslrootcert=\(dir.path)/ca.pem")), "no TLS on a verify-full session")
        #expect(try await encrypted(try uri("sslmode=require")))
        #expect(try await encrypted(admin) == false, "without sslmode the connection is plain")
        for refused in [try uri("sslmode=verify-full&sslrootcert=\(dir.path)/other.pem"), try uri("sslmode=verify-ca&sslrootcert=\(dir.path)/other.pem")] {
            await #expect {
                _ = try await encrypted(refused)
            } throws: { error in
                (error as? PostgresError)?.isConfiguration == true && !"\(error)".contains("test@")
            }
        }
        // The shared test server has no TLS: require is refused.
        var plain = try TestPostgres.adminURI
        plain.options["sslmode"] = "require"
        await #expect {
            _ = try await encrypted(plain)
        } throws: { error in
            (error as? PostgresError)?.isConfiguration == true
        }
    }
}
