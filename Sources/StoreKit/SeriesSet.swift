import Foundation

/// Table-and-symbol pairs a store remembers across its batches (series written by plain COPY or LOAD DATA while
/// empty, series that met a stored row), shared by the copies of a store.
public final class SeriesSet: @unchecked Sendable {
    private let lock = NSLock()
    private var keys: Set<String> = []

    public init() {}

    public func insert(_ table: String, _ symbol: String) { _ = lock.withLock { keys.insert(table + " " + symbol) } }
    public func remove(_ table: String, _ symbol: String) { _ = lock.withLock { keys.remove(table + " " + symbol) } }
    public func contains(_ table: String, _ symbol: String) -> Bool { lock.withLock { keys.contains(table + " " + symbol) } }
}
