/// A table that exists but cannot take the run's rows as they are: wrong column types, a column the run does not
/// fill, no unique key, or a value the table would change. A configuration error (exit 2): nothing is written.
public struct SchemaError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
