import BinanceAPI
import StoreKit
import TestSupport
import Testing

/// A table the catalogue describes, written by the store's generic writer, with nothing written for it by hand: created
/// from its definition, upserted on its key, every kind of value read back exactly, NULL kept as NULL.
@Suite("any catalogue table, on both stores", .serialized, .timeLimit(.minutes(1)))
struct CatalogueWriterTests {
    static let table = TableDefinition(name: "bx_catalogue_probe", columns: [
        .symbol, .time("at"), .decimal("price"), .decimal("note_value", nullable: true),
        TableDefinition.Column("trades", .integer), TableDefinition.Column("flag", .boolean),
        TableDefinition.Column("label", .text, nullable: true, length: 16), TableDefinition.Column("seen_at", .time, defaultsToNow: true),
    ], key: ["symbol", "at"], comment: "a probe table of the catalogue writer's test")

    static func row(_ at: Int64, price: String, note: String?, trades: Int64, flag: Bool, label: String?) -> [ColumnValue] {
        [.text("BTCUSDT"), .time(at), .decimal(DecimalString(unchecked: price)), note.map { .decimal(DecimalString(unchecked: $0)) } ?? .null,
         .integer(trades), .boolean(flag), label.map(ColumnValue.text) ?? .null]
    }

    @Test("created from its definition, upserted on its key, read back exactly; a row that does not fit is refused before anything is sent",
          arguments: StoreKind.allCases)
    func writeAndReadBack(store kind: StoreKind) async throws {
        let db = try await TestStore.make(kind)
        defer { Task { await db.drop() } }
        let writer = try await db.catalogueWriter(creating: Self.table)
        let t0: Int64 = 1_704_067_200_123
        #expect(try await writer.write(Self.table, rows: [
            Self.row(t0, price: "0.00000123", note: nil, trades: 5, flag: true, label: "first"),
            Self.row(t0 + 60_000, price: "98765432109876543210.123456789012345678", note: "-1.5", trades: 0, flag: false, label: nil),
        ]) == 2)
        // Read again with other values: the row is replaced, not doubled.
        #expect(try await writer.write(Self.table, rows: [Self.row(t0, price: "0.00000124", note: "2", trades: 6, flag: false, label: "again")]) == 1)
        let time = kind == .mariadb ? "CAST(UNIX_TIMESTAMP(at) * 1000 AS SIGNED)" : "(extract(epoch FROM at) * 1000)::bigint"
        let flag = kind == .mariadb ? "flag" : "flag::int"
        let rows = try await db.query("SELECT \(time), price, note_value, trades, \(flag), label, seen_at IS NOT NULL FROM bx_catalogue_probe ORDER BY at")
        #expect(rows.count == 2)
        #expect(rows[0] == ["\(t0)", "0.000001240000000000", "2.000000000000000000", "6", "0", "again", kind == .mariadb ? "1" : "t"], "\(rows[0])")
        #expect(rows[1][1] == "98765432109876543210.123456789012345678" && rows[1][2] == "-1.500000000000000000" && rows[1][5] == nil, "\(rows[1])")
        // A NULL where the column takes none, or a value of another kind: refused whole, nothing written.
        await #expect(throws: SchemaError.self) {
            _ = try await writer.write(Self.table, rows: [Self.row(t0 + 120_000, price: "1", note: nil, trades: 1, flag: true, label: nil),
                                                          [.text("BTCUSDT"), .null, .decimal(DecimalString(unchecked: "1")), .null, .integer(1), .boolean(true), .null]])
        }
        #expect(try await db.count("bx_catalogue_probe") == 2)
    }
}
