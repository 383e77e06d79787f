import Foundation
import Pipeline
import Testing

@Suite("archive spool folder")
struct SpoolTests {
    @Test("a spool file a day old (a killed process's) is removed when a client starts; a fresh one is kept")
    func sweep() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        let folder = (base as NSString).appendingPathComponent("binance-extractor-spool")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let old = (folder as NSString).appendingPathComponent("old.zip"), fresh = (folder as NSString).appendingPathComponent("fresh.zip")
        #expect(FileManager.default.createFile(atPath: old, contents: Data([1])) && FileManager.default.createFile(atPath: fresh, contents: Data([2])))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -2 * 86_400)], ofItemAtPath: old)
        ArchiveClient.sweep(base)
        #expect(!FileManager.default.fileExists(atPath: old) && FileManager.default.fileExists(atPath: fresh))
    }
}
