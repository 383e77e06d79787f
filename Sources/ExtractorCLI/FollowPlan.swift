import Clocks
import Foundation
import HealthEndpoint
import Logging
import Pipeline
import Telemetry

/// What `follow` runs: the followers, the hubs that feed them, what they report to, and the probes' server.
struct FollowPlan: Sendable {
    let units: [any LongRunningUnit]
    let hubs: [StreamHub]
    let monitor: FollowMonitor
    let health: HealthServer?

    /// Runs the hubs and the followers until the run is stopped, with the health port and the reporter beside them. A
    /// follower stopped by it ends as it should (`succeeded`: what arrived was committed); one that failed for good
    /// stays failed.
    func run(supervisor: Supervisor, reporter: FollowReporter, logger: Logger) async -> [UnitReport] {
        await withTaskGroup(of: Void.self) { group in
            if let health {
                group.addTask {
                    do { try await health.run() } catch {
                        if !Task.isCancelled { logger.error("the health port stopped serving", metadata: ["error": "\(error)"]) }
                    }
                }
            }
            group.addTask { await reporter.run() }
            let reports = await supervisor.follow(units, fedBy: hubs)
            group.cancelAll()
            return reports.map { report in
                var report = report
                if report.status == .interrupted { report.status = .succeeded }
                return report
            }
        }
    }
}

/// Publishes the follower's state: every second as metrics (events, reconnects and corrections counted; units behind and
/// streaming as gauges), every minute as one log line (a pod's logs show it alive and how far behind).
struct FollowReporter: Sendable {
    let monitor: FollowMonitor
    let clock: any WallClock
    let logger: Logger
    let metrics: RunMetrics?
    var logEvery: Int64 = 60_000

    func run() async {
        var last = monitor.snapshot
        var lastLog = clock.now()
        var eventsAtLog = last.events
        var trimmedReady = false
        var lastTrim = clock.now()
        while !Task.isCancelled {
            do { try await clock.sleep(until: clock.now() + 1_000) } catch { return }
            let s = monitor.snapshot
            publish(s, since: last)
            // Once every unit has caught up for the first time, and then each minute: what the catch-ups freed goes back.
            if s.ready && !trimmedReady || (clock.now() - lastTrim >= 60_000) {
                MemoryPolicy.trim()
                trimmedReady = trimmedReady || s.ready
                lastTrim = clock.now()
            }
            last = s
            let now = clock.now()
            if now - lastLog >= logEvery {
                logger.info("following", metadata: [
                    "units": "\(s.units)", "streaming": "\(s.streaming)", "caught_up": "\(s.caughtUp)",
                    "events_per_s": "\(String(format: "%.1f", Double(s.events - eventsAtLog) * 1000 / Double(now - lastLog)))",
                    "lag_p50_ms": "\(s.lagP50.map(String.init) ?? "-")", "lag_p99_ms": "\(s.lagP99.map(String.init) ?? "-")",
                    "corrected": "\(s.corrected)", "reconnects": "\(s.reconnects)",
                    "behind": "\(s.behind.prefix(5).joined(separator: ","))",
                ])
                lastLog = now
                eventsAtLog = s.events
            }
        }
    }

    func publish(_ s: FollowMonitor.Snapshot, since last: FollowMonitor.Snapshot) {
        guard let metrics else { return }
        metrics.add("binance_extractor.follow.events", Double(s.events - last.events), unit: "{event}", description: "Stream messages received")
        metrics.add("binance_extractor.follow.reconnects", Double(s.reconnects - last.reconnects), unit: "{connection}",
                    description: "Stream connections lost and made again")
        metrics.add("binance_extractor.follow.corrections", Double(s.corrected - last.corrected), unit: "{candle}",
                    description: "Candles written from the stream whose REST values differed, written again")
        metrics.set("binance_extractor.follow.units_behind", Int64(s.units - s.caughtUp), unit: "{unit}",
                    description: "Units whose stream is down or which are catching up")
        metrics.set("binance_extractor.follow.units_streaming", Int64(s.streaming), unit: "{unit}", description: "Units whose stream is connected")
    }
}
