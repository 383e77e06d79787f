import Tracing

/// How many units catch up at once. A thousand units starting (or reconnecting) together would otherwise run a thousand
/// catch-ups at once: the requests queue behind the weight budget anyway, and their buffers would all be held together.
/// A few at a time finish as fast (the budget and the database set the pace) in a fraction of the memory.
public actor CatchUpGate {
    public let slots: Int
    private var busy = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(slots: Int) { self.slots = max(1, slots) }

    /// Runs `body` once a slot is free.
    public func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        if busy < slots {
            busy += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty { busy -= 1 } else { waiting.removeFirst().resume() }
    }
}

/// Runs `body` in a child task of its own, structured (cancelled with the caller). A follower lives as long as the
/// process, and a task keeps the async frames its deepest call ever needed: a catch-up or a REST page run this way
/// leaves them in the child's allocator, freed when it ends, so a thousand followers hold a few KiB each, not the
/// tens of KiB their deepest moment took.
func inChildTask<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask(operation: body)
        guard let value = try await group.next() else { throw CancellationError() }
        return value
    }
}

/// A follower's catch-up, in a child task of its own and a slot of `gate`: the jobs' extractor (`attempt`, one run)
/// again and again until it has caught up (a page cap stops one run; the next plans from what is now stored), in one
/// span, then `position`, the unit's last stored row. Returns the runs' totals and that position.
func followCatchUp<Position: Sendable>(_ unit: ExtractionUnit, gate: CatchUpGate?,
                                       attempt: @escaping @Sendable () async throws -> UnitOutcome,
                                       position: @escaping @Sendable () async throws -> Position) async throws -> (UnitOutcome, Position) {
    let runs: @Sendable () async throws -> UnitOutcome = {
        try await withSpan("follow catch-up", ofKind: .internal) { span in
            span.attributes["binance_extractor.unit"] = "\(unit)"
            var total = UnitOutcome()
            while true {
                let part = try await attempt()
                total.absorb(part)
                if part.caughtUp != false || part.written == 0 { break }
            }
            span.attributes["binance_extractor.written"] = Int64(total.written)
            return total
        }
    }
    return try await inChildTask {
        let total = if let gate { try await gate.run(runs) } else { try await runs() }
        return (total, try await position())
    }
}
