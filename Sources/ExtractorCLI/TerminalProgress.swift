import Clocks
import Foundation
import Pipeline
import Telemetry

/// Live progress on a terminal (standard error only when it is a terminal, so piped logs stay clean):
/// candles done of planned, rate, time left, and the archive files read (with the last one), redrawn in place twice a
/// second.
final class TerminalProgress: ProgressObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var planned: [ExtractionUnit: Int64] = [:]
    private var done: [ExtractionUnit: Int64] = [:]
    private var finishedUnits = 0
    private var files = 0
    private var lastFile: String?
    private let sink: LineSink
    private let clock: any WallClock
    private let started: Int64
    private var timer: Task<Void, Never>?
    /// A follower's state: once set, the line shows streams, catch-up, events and lag instead of candles planned.
    private var follow: (monitor: FollowMonitor, since: Int64, events: Int)?

    init(sink: LineSink, clock: any WallClock) {
        self.sink = sink
        self.clock = clock
        started = clock.now()
        timer = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 500_000_000)
                self?.draw()
            }
        }
    }

    func planned(_ unit: ExtractionUnit, candles: Int64) { lock.withLock { planned[unit] = candles } }
    func advanced(_ unit: ExtractionUnit, candles: Int) { lock.withLock { done[unit, default: 0] += Int64(candles) } }
    func finished(_ unit: ExtractionUnit) { lock.withLock { finishedUnits += 1 } }
    func readFile(_ unit: ExtractionUnit, name: String, rows: Int) {
        lock.withLock {
            files += 1
            lastFile = name
        }
    }

    /// From now on the line is the follower's.
    func following(_ monitor: FollowMonitor) {
        lock.withLock { follow = (monitor, clock.now(), monitor.snapshot.events) }
    }

    private func draw() {
        let text: String = lock.withLock {
            if let (monitor, since, events) = follow {
                let now = clock.now()
                let snapshot = monitor.snapshot
                follow = (monitor, now, snapshot.events)
                return Self.followLine(snapshot, eventsPerSecond: Double(snapshot.events - events) * 1000 / Double(max(1, now - since)))
            }
            let total: Int64 = planned.values.reduce(0, +)
            let complete: Int64 = done.values.reduce(0, +)
            return Self.line(units: finishedUnits, of: planned.count, candles: complete, planned: total,
                             milliseconds: clock.now() - started, files: files, lastFile: lastFile)
        }
        sink.write("\r\u{1B}[K" + text)
    }

    /// The progress line's text.
    static func line(units: Int, of count: Int, candles complete: Int64, planned total: Int64, milliseconds: Int64,
                     files: Int, lastFile: String?) -> String {
        let seconds = max(0.001, Double(milliseconds) / 1000)
        let rate = Double(complete) / seconds
        let left = rate > 0 ? Double(max(0, total - complete)) / rate : 0
        let percent = total > 0 ? min(100, Double(complete) * 100 / Double(total)) : 0
        var text = String(format: "%d/%d units done | %lld/%lld candles (%.0f%%) | %.0f/s | ~%.0f s left",
                          units, count, complete, total, percent, rate, left)
        if files > 0 { text += " | \(files) archive files" + (lastFile.map { ", last \($0)" } ?? "") }
        return text
    }

    /// The follower's line: streams, caught up, events a second, lag, corrections, reconnects.
    static func followLine(_ s: FollowMonitor.Snapshot, eventsPerSecond: Double) -> String {
        var text = String(format: "follow: %d/%d units streaming, %d caught up | %.0f events/s", s.streaming, s.units, s.caughtUp, eventsPerSecond)
        if let p50 = s.lagP50, let p99 = s.lagP99 { text += " | lag p50 \(p50) ms, p99 \(p99) ms" }
        text += " | \(s.committed) candles from the stream, \(s.corrected) corrected, \(s.reconnects) reconnects"
        return text
    }

    func stop() {
        timer?.cancel()
        sink.write("\r\u{1B}[K")
    }
}
