import BinanceArchive

/// One file of a time-keyed dataset (a series' candles, trading metrics): its rows inside `range`, in time order,
/// handed to `take`; where the file lacks times between two of its rows (an incomplete file, binance-public-data
/// #436), `rest` is asked for them before the later row is taken, so the writes stay in time order and a retry
/// resumes exactly where the writes stopped. Returns what reading the file gave and the next time it did not cover
/// (the caller fills what the file lacks at its end, as its dataset does).
func readTimeSeriesFile<Row>(_ file: ArchiveFile, from archive: any ArchiveSource, format: ArchiveRowFormat<Row>, time: (Row) -> Int64,
                             step: Int64, within range: ClosedRange<Int64>, take: ([Row]) async throws -> Void,
                             rest: (_ from: Int64, _ to: Int64) async throws -> Void) async throws -> (read: ArchiveRead, expected: Int64) {
    var expected = max(file.range.lowerBound, range.lowerBound)
    let read = try await archive.readInSpan(file, format: format) { rows in
        var pending: [Row] = []
        pending.reserveCapacity(rows.count)
        for row in rows where range.contains(time(row)) {
            let at = time(row)
            if at > expected {
                try await take(pending)
                pending.removeAll(keepingCapacity: true)
                try await rest(expected, at - step)
            }
            expected = max(expected, at + step)
            pending.append(row)
        }
        try await take(pending)
    }
    return (read, expected)
}
