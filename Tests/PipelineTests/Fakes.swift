import BinanceAPI
import Foundation
import Pipeline
import MariaDBStore
import StoreKit

/// A Binance of fixed candles: every interval-aligned open time in `listed` has a candle; open after `now`.
final class FakeSource: KlineSource, @unchecked Sendable {
    let lock = NSLock()
    var requests: [KlinesRequest] = []
    var failures: [any Error] = []
    /// Failures by request number (1 for the first request), after `failures`.
    var failOnRequest: [Int: any Error] = [:]
    let listed: Range<Int64>
    let nowProvider: @Sendable () -> Int64
    var corrupt: Int64?
    /// Open times with no candle (an exchange outage).
    var outage: Range<Int64>?

    init(listed: Range<Int64>, now: @escaping @Sendable () -> Int64) {
        self.listed = listed
        nowProvider = now
    }

    static func kline(_ t: Int64, _ interval: KlineInterval, price: String = "10.5") -> Kline {
        let d = DecimalString(unchecked: price)
        return Kline(openTime: t, open: d, high: DecimalString(unchecked: "11"), low: DecimalString(unchecked: "10"), close: d,
                     volume: DecimalString(unchecked: "1.5"), closeTime: interval.closeTime(forOpenTime: t),
                     quoteAssetVolume: DecimalString(unchecked: "15.75"), numberOfTrades: 3,
                     takerBuyBaseAssetVolume: DecimalString(unchecked: "0.5"), takerBuyQuoteAssetVolume: DecimalString(unchecked: "5.25"))
    }

    func klines(_ request: KlinesRequest) async throws -> [Kline] {
        let failure: (any Error)? = lock.withLock {
            requests.append(request)
            if !failures.isEmpty { return failures.removeFirst() }
            return failOnRequest[requests.count]
        }
        if let failure { throw failure }
        var out: [Kline] = []
        var t = request.interval.openTime(containing: max(request.startTime ?? 0, listed.lowerBound))
        if t < (request.startTime ?? 0) { t = request.interval.nextOpenTime(after: t) }
        while t <= min(request.endTime ?? .max, nowProvider()), t < listed.upperBound, out.count < request.limit {
            if outage?.contains(t) == true {
                t = request.interval.nextOpenTime(after: t)
                continue
            }
            var k = Self.kline(t, request.interval)
            if t == corrupt { k.low = DecimalString(unchecked: "99") }
            out.append(k)
            t = request.interval.nextOpenTime(after: t)
        }
        return out
    }
}

/// An in-memory table store.
final class MemoryStore: KlineStoring, @unchecked Sendable {
    let lock = NSLock()
    var rows: [KlineTable: [String: [Int64: Kline]]] = [:]
    var batches: [Int] = []
    /// After this many batches every write fails, as on a full disk (MariaDB error 1114, "table is full").
    var failAfterBatches: Int?

    func lastOpenTime(table: KlineTable, symbol: Symbol) async throws -> Int64? {
        lock.withLock { rows[table]?[symbol.name]?.keys.max() }
    }

    func write(table: KlineTable, symbol: Symbol, klines: [Kline]) async throws -> Int {
        if let limit = failAfterBatches, lock.withLock({ batches.count >= limit }) {
            throw DatabaseError(code: 1114, message: "The table is full", context: "test")
        }
        return lock.withLock {
            batches.append(klines.count)
            for k in klines { rows[table, default: [:]][symbol.name, default: [:]][k.openTime] = k }
            return klines.count
        }
    }

    func stored(_ table: KlineTable, _ symbol: String) -> [Kline] {
        lock.withLock { (rows[table]?[symbol] ?? [:]).values.sorted { $0.openTime < $1.openTime } }
    }
}
