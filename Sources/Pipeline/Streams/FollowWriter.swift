import BinanceAPI
import StoreKit

/// The followers' one writer (the `BatchWriter` of a long run): what every unit hands it while a write is in flight
/// goes to the database together, one statement per table (group commit). At a minute's close a thousand units'
/// finals arrive within a second; one by one they would queue behind each other's round trips, together they commit
/// in one. Nothing waits for a batch to fill: a write starts at once when none is in flight, so a lone candle is
/// committed as fast as the database allows, and a busy moment costs one round trip per table, not one per unit.
///
/// A unit awaits its own candles' commit (it writes each candle once, and counts it, after that). When a group's write
/// fails, each unit's part is written alone, so one unit's bad row (a table that cannot take it) fails that unit only.
public actor FollowWriter {
    public let store: any KlineStoring
    private var pending: [Entry] = []
    private var running = false
    /// Statements written, and candles in them.
    public private(set) var statements = 0
    public private(set) var candles = 0

    struct Entry: Sendable {
        let table: KlineTable
        let group: KlineGroup
        let done: CheckedContinuation<Int, any Error>
    }

    public init(store: any KlineStoring) { self.store = store }

    /// Writes `klines` of `symbol` with whatever else is ready; returns once they are committed.
    public func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int {
        guard !klines.isEmpty else { return 0 }
        return try await withCheckedThrowingContinuation { continuation in
            pending.append(Entry(table: table, group: KlineGroup(symbol: symbol, klines: klines), done: continuation))
            if !running {
                running = true
                Task { await drain() }
            }
        }
    }

    /// Writes what is pending, and what arrives meanwhile, until nothing is. The tables of one moment (a 5m close is
    /// also a 1m close) are written at once, each on its own pooled connection.
    private func drain() async {
        while !pending.isEmpty {
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            var order: [KlineTable] = []
            var byTable: [KlineTable: [Entry]] = [:]
            for entry in batch {
                if byTable[entry.table] == nil { order.append(entry.table) }
                byTable[entry.table, default: []].append(entry)
            }
            let store = store
            let done = await withTaskGroup(of: (Int, Int).self) { group in
                for table in order {
                    let entries = byTable[table]!
                    group.addTask { await Self.write(store, table, entries) }
                }
                var total = (0, 0)
                for await (statements, candles) in group { total = (total.0 + statements, total.1 + candles) }
                return total
            }
            statements += done.0
            candles += done.1
        }
        running = false
    }

    /// One table's part of a moment; returns the statements that committed and their candles.
    private static func write(_ store: any KlineStoring, _ table: KlineTable, _ entries: [Entry]) async -> (Int, Int) {
        do {
            let n = try await store.write(table: table, groups: merged(entries.map(\.group)))
            entries.forEach { $0.done.resume(returning: $0.group.klines.count) }
            return (1, n)
        } catch where entries.count > 1 {
            // Each unit alone: the one whose rows the table refuses fails; the others are written.
            var total = (0, 0)
            for entry in entries {
                let (statements, candles) = await write(store, table, [entry])
                total = (total.0 + statements, total.1 + candles)
            }
            return total
        } catch {
            entries.forEach { $0.done.resume(throwing: error) }
            return (0, 0)
        }
    }

    /// One group per symbol, a candle once (the last value given for an open time wins): one statement may not touch a
    /// row twice (PostgreSQL's `ON CONFLICT DO UPDATE` refuses to).
    static func merged(_ groups: [KlineGroup]) -> [KlineGroup] {
        guard groups.count > 1 else { return groups }
        var order: [Symbol] = []
        var bySymbol: [Symbol: [Int64: Kline]] = [:]
        for group in groups {
            if bySymbol[group.symbol] == nil { order.append(group.symbol) }
            for kline in group.klines { bySymbol[group.symbol, default: [:]][kline.openTime] = kline }
        }
        return order.map { symbol in
            KlineGroup(symbol: symbol, klines: bySymbol[symbol]!.values.sorted { $0.openTime < $1.openTime })
        }
    }
}
