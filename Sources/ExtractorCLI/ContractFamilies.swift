import BinanceAPI
import Pipeline

/// `PAIR_*` in `--symbols`: the contracts of a pair, found when the run starts, so a CronJob follows the quarters
/// without an edit. The contracts `exchangeInfo` lists for the pair (its `pair` field, or the name's prefix where a
/// market gives none: the perpetual, the current and the next quarter), and the quarterly contract that delivered in
/// the last 7 days (Binance may stop listing it at delivery; its last candles are stored by the run after).
enum ContractFamilies {
    static let recentlyDelivered: Int64 = 7 * 86_400_000

    static func expand(_ families: [Symbol], listed: [ExchangeInfo.SymbolInfo], now: Int64) -> (symbols: [Symbol], unmatched: [Symbol]) {
        var symbols: [Symbol] = [], unmatched: [Symbol] = []
        for family in families {
            var found = listed.filter { ($0.pair ?? String($0.symbol.prefix { $0 != "_" })) == family.name && $0.symbol.hasPrefix(family.name + "_") }
                .compactMap { try? Symbol(validating: $0.symbol) }
            if let last = QuarterlyDelivery.around(now)?.last, now - last <= recentlyDelivered,
               let delivered = try? Symbol(validating: QuarterlyDelivery.symbol(pair: family.name, delivery: last)), !found.contains(delivered), !found.isEmpty {
                found.append(delivered)
            }
            if found.isEmpty { unmatched.append(family) }
            symbols += found.sorted().filter { !symbols.contains($0) }
        }
        return (symbols, unmatched)
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
