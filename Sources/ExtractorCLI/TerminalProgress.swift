import Clocks
import Foundation
import Pipeline
import Telemetry

/// Live progress on a terminal (standard error only when it is a terminal, so piped logs stay clean):
/// candles done of planned, rate, and time left, redrawn in place twice a second.
final class TerminalProgress: ProgressObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var planned: [ExtractionUnit: Int64] = [:]
    private var done: [ExtractionUnit: Int64] = [:]
    private var finishedUnits = 0
    private let sink: LineSink
    private let clock: any WallClock
    private let started: Int64
    private var timer: Task<Void, Never>?

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

    private func draw() {
        let (total, complete, units, count) = lock.withLock {
            (planned.values.reduce(0, +), done.values.reduce(0, +), finishedUnits, planned.count)
        }
        let seconds = max(0.001, Double(clock.now() - started) / 1000)
        let rate = Double(complete) / seconds
        let left = rate > 0 ? Double(max(0, total - complete)) / rate : 0
        let percent = total > 0 ? min(100, Double(complete) * 100 / Double(total)) : 0
        sink.write(String(format: "\r\u{1B}[K%d/%d units done | %lld/%lld candles (%.0f%%) | %.0f/s | ~%.0f s left",
                          units, count, complete, total, percent, rate, left))
    }

    func stop() {
        timer?.cancel()
        sink.write("\r\u{1B}[K")
    }
}
