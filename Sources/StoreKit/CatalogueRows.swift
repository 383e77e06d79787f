import BinanceAPI

/// One value of a catalogue column, as the run writes it; a store binds it in its own way.
public enum ColumnValue: Sendable, Equatable {
    case text(String)
    /// Unix milliseconds, stored as a UTC time with milliseconds.
    case time(Int64)
    case decimal(DecimalString)
    case integer(Int64)
    case boolean(Bool)
    /// No value (a nullable column): kept as NULL.
    case null
}

/// Writes the rows of any table of the catalogue: upserted on the table's key, so a row read again replaces every
/// other value, in one batch statement (or transaction) that is written whole or not at all. A new dataset whose rows
/// need nothing more than that (no other tool's table shape to keep serving) needs no writer of its own on any store:
/// its `TableDefinition` and rows are enough.
public protocol CatalogueWriting: Sendable {
    /// `rows`: each row's values in the order of `table.ordered`, leaving out the columns the database fills
    /// (`defaultsToNow`). Returns the rows written.
    func write(_ table: TableDefinition, rows: [[ColumnValue]]) async throws -> Int
}

extension TableDefinition {
    /// The columns a run writes, in order.
    public var written: [Column] { ordered.filter { !$0.defaultsToNow } }

    /// Refuses a row that does not match the written columns (its count, a kind, a NULL in a NOT NULL column) before
    /// anything is sent.
    public func check(_ row: [ColumnValue]) throws(SchemaError) {
        let columns = written
        guard row.count == columns.count else {
            throw SchemaError("a row of \(row.count) values for \(name), which the run writes \(columns.count) columns of")
        }
        for (column, value) in zip(columns, row) {
            let fits: Bool
            switch (column.kind, value) {
            case (_, .null): fits = column.nullable
            case (.text, .text), (.time, .time), (.decimal, .decimal), (.integer, .integer), (.boolean, .boolean): fits = true
            default: fits = false
            }
            guard fits else { throw SchemaError("\(name).\(column.name) (\(column.kind)) cannot take \(value)") }
        }
    }
}
