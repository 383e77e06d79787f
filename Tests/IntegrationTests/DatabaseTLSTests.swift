import Foundation
import MariaDBStore
import StoreKit
import TestSupport
import Testing

/// TLS to MariaDB (`ssl-mode`, `ssl-ca` in the URI) against a real server started with a certificate this test makes.
@Suite("TLS to MariaDB", .timeLimit(.minutes(3)))
struct DatabaseTLSTests {
    /// A CA, a server certificate it signs for `db.test` (not the 127.0.0.1 connected to), and an unrelated CA.
    static func makeCertificates(in dir: URL) throws {
        let script = """
        set -e; cd '\(dir.path)'
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bx-test-ca -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj /CN=db.test -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=DNS:db.test\\n' > san.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestSetupError("openssl could not make the test certificates") }
    }

    func connect(_ uri: DatabaseURI) async throws -> String {
        let pool = ConnectionPool(uri: uri, size: 1)
        defer { pool.shutdown() }
        return try await pool.withConnection { try $0.query("SHOW STATUS LIKE 'Ssl_cipher'").first?[1] ?? "" } ?? ""
    }

    @Test("VERIFY_CA with the right CA connects over TLS; a wrong CA, a host the certificate does not name, or a server without TLS is refused")
    func verifiedAndRefused() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bx-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.makeCertificates(in: dir)
        let server = try DedicatedMariaDB(serverArguments: [
            "--ssl-ca=\(dir.path)/ca.pem", "--ssl-cert=\(dir.path)/server.pem", "--ssl-key=\(dir.path)/server.key",
        ])
        defer { server.destroy() }
        func uri(_ query: String) throws -> DatabaseURI {
            try DatabaseURI(parsing: "mysql://root:test@127.0.0.1:\(server.adminURI.port)/mysql?\(query)")
        }
        let cipher = try await connect(try uri("ssl-mode=VERIFY_CA&ssl-ca=\(dir.path)/ca.pem"))
        #expect(!cipher.isEmpty, "no TLS cipher on a VERIFY_CA connection")
        #expect(!(try await connect(try uri("ssl-mode=REQUIRED"))).isEmpty)
        #expect(try await connect(server.adminURI).isEmpty, "without ssl-mode the connection is plain")
        for refused in ["ssl-mode=VERIFY_CA&ssl-ca=\(dir.path)/other.pem", "ssl-mode=VERIFY_IDENTITY&ssl-ca=\(dir.path)/ca.pem"] {
            await #expect(throws: DatabaseError.self, "\(refused) must be refused") { _ = try await connect(try uri(refused)) }
            do { _ = try await connect(try uri(refused)) } catch let error as DatabaseError {
                #expect(error.isConfiguration, "\(error)")
            }
        }
        // The shared test server has no TLS: REQUIRED is refused, PREFERRED falls back to plain text.
        let plain = try await TestDatabase.make()
        defer { Task { await plain.drop() } }
        var required = plain.uri
        required.tlsMode = .required
        await #expect(throws: DatabaseError.self) { _ = try await connect(required) }
        var preferred = plain.uri
        preferred.tlsMode = .preferred
        #expect(try await connect(preferred).isEmpty)
    }
}
