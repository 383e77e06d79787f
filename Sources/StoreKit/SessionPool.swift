import BlockingThreads
import Clocks
import Foundation
import Logging

/// What a store's errors say about running a statement again. MariaDB's and PostgreSQL's errors both answer it, so
/// one pool absorbs the same faults for either.
public protocol StoreFailure: Error {
    /// The connection is gone or going (the server restarted, the network dropped): reconnecting may help.
    var isConnectionLost: Bool { get }
    /// A deadlock or lock wait timeout rolled the transaction back: running it again may help.
    var isTransientLock: Bool { get }
    /// Wrong credentials, database, privileges or TLS: only a change of configuration helps.
    var isConfiguration: Bool { get }
    /// The database's own code for the error (MariaDB's error number, PostgreSQL's SQLSTATE), for spans.
    var responseStatusCode: String? { get }
}

extension StoreFailure {
    /// Whether the same statement may succeed when run again.
    public var isRetryable: Bool { isConnectionLost || isTransientLock }
}

/// What a pool absorbs: how long it reconnects after the server went away, and how often it runs a statement again
/// after a lock conflict.
public struct SessionFaults: Sendable {
    public var reconnectWindowMilliseconds: Int64
    public var lockRetries: Int

    public init(reconnectWindowMilliseconds: Int64 = 30_000, lockRetries: Int = 5) {
        self.reconnectWindowMilliseconds = reconnectWindowMilliseconds
        self.lockRetries = lockRetries
    }
}

/// A fixed number of connections to one database, each owned by its own `BlockingThread`.
///
/// `withConnection` hands the body one connection on that connection's thread, so no two threads ever use a
/// connection at once and the C client's blocking calls stay off Swift's cooperative pool.
///
/// Faults it absorbs, because everything the project writes is an idempotent upsert of a whole batch in one
/// statement or transaction (so running it again never duplicates or half-writes anything):
/// - the server went away after the pool had reached it: reconnect with backoff for up to the reconnect window, then
///   run the body again on the fresh connection;
/// - a deadlock or lock wait timeout: run the body again, up to `lockRetries` times.
/// A server that was never reachable, or wrong credentials, fail at once.
public final class SessionPool<Connection: AnyObject>: Sendable {
    public typealias Faults = SessionFaults

    private let slots: ResourcePool<Slot>
    private let faults: Faults
    private let clock: any WallClock
    private let logger: Logger
    /// The database as messages show it (no password).
    private let described: String
    private let state = PoolState()

    /// `connect` runs on a slot's own thread whenever the slot has no open connection; `close` on the same thread.
    /// Waits between attempts go by `clock`.
    public init(size: Int, threadName: String, faults: Faults, clock: any WallClock = SystemClock(), described: String, logger: Logger,
                connect: @escaping @Sendable () throws -> Connection, close: @escaping @Sendable (Connection) -> Void) {
        self.faults = faults
        self.clock = clock
        self.logger = logger
        self.described = described
        slots = ResourcePool((0..<max(1, size)).map { Slot(name: "\(threadName)-\($0)", connect: connect, close: close) })
    }

    public var size: Int { slots.all.count }
    /// Reconnections and statement retries so far (for tests and the summary).
    public var reconnects: Int { state.reconnects }
    public var lockRetriesDone: Int { state.lockRetries }

    /// Runs `body` with a connection, absorbing the faults above.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let slot = try await slots.acquire()
        defer { slots.release(slot) }
        var retry = SessionRetry(faults: faults)
        while true {
            do {
                let value = try await slot.thread.run { try body(try slot.open()) }
                state.markReached()
                return value
            } catch let error as StoreFailure {
                switch retry.next(after: error, everReached: state.everReached, now: clock.now()) {
                case .fail:
                    throw error
                case .reconnect(let wait, let first):
                    if first {
                        logger.warning("database connection lost; reconnecting", metadata: ["error": "\(error)", "database": "\(described)"])
                    }
                    state.countReconnect()
                    _ = try? await slot.thread.run { slot.reset() }
                    try await clock.sleep(until: clock.now() + wait)
                case .runAgain(let wait, let attempt):
                    state.countLockRetry()
                    logger.warning("database lock conflict; running the statement again", metadata: [
                        "error": "\(error)", "attempt": "\(attempt)",
                    ])
                    try await clock.sleep(until: clock.now() + wait)
                }
            }
        }
    }

    /// Closes every connection and ends their threads.
    public func shutdown() {
        for slot in slots.all { slot.shutdown() }
    }

    /// A connection slot: the thread, and the connection it owns once opened.
    final class Slot: @unchecked Sendable {
        let thread: BlockingThread
        private let connect: @Sendable () throws -> Connection
        private let close: @Sendable (Connection) -> Void
        private var connection: Connection?

        init(name: String, connect: @escaping @Sendable () throws -> Connection, close: @escaping @Sendable (Connection) -> Void) {
            thread = BlockingThread(name: name)
            self.connect = connect
            self.close = close
        }

        /// Runs on `thread` only.
        func open() throws -> Connection {
            if let connection { return connection }
            let fresh = try connect()
            connection = fresh
            return fresh
        }

        /// Runs on `thread` only.
        func reset() {
            if let connection { close(connection) }
            connection = nil
        }

        func shutdown() {
            _ = thread.enqueue { [self] in reset() }
            thread.shutdown()
        }
    }
}

/// Counters shared by a pool's tasks.
final class PoolState: @unchecked Sendable {
    private let lock = NSLock()
    private var reached = false
    private var reconnectCount = 0
    private var lockRetryCount = 0

    var everReached: Bool { lock.withLock { reached } }
    var reconnects: Int { lock.withLock { reconnectCount } }
    var lockRetries: Int { lock.withLock { lockRetryCount } }
    func markReached() { lock.withLock { reached = true } }
    func countReconnect() { lock.withLock { reconnectCount += 1 } }
    func countLockRetry() { lock.withLock { lockRetryCount += 1 } }
}

/// What a pool does after a statement failed, attempt after attempt: the state machine of `SessionPool`'s fault
/// handling, on the time it is given (pure, so a test drives it without a database or a clock).
public struct SessionRetry: Sendable {
    public enum Decision: Sendable, Equatable {
        /// The connection is gone: reconnect after `wait` ms (`first`: the first loss of this statement, to say once).
        case reconnect(wait: Int64, first: Bool)
        /// A deadlock or lock wait timeout rolled the statement back: run it again after `wait` ms (`attempt` from 1).
        case runAgain(wait: Int64, attempt: Int)
        /// Nothing more to try: the error stands.
        case fail
    }

    let faults: SessionFaults
    private var lostSince: Int64?
    private var backoff: Int64 = 100
    private var lockAttempts = 0

    public init(faults: SessionFaults) { self.faults = faults }

    /// A lost connection is retried with doubling waits (0.1 s to 2 s) for the reconnect window from the first loss,
    /// once the server was ever reached (a server never reached, or wrong credentials, fail at once); a transient
    /// lock conflict is run again `lockRetries` times, waiting 0.1 s more each time; anything else fails.
    public mutating func next(after error: any StoreFailure, everReached: Bool, now: Int64) -> Decision {
        if error.isConnectionLost && everReached {
            let first = lostSince == nil
            let since = lostSince ?? now
            lostSince = since
            guard now - since < faults.reconnectWindowMilliseconds else { return .fail }
            defer { backoff = min(backoff * 2, 2_000) }
            return .reconnect(wait: backoff, first: first)
        }
        if error.isTransientLock && lockAttempts < faults.lockRetries {
            lockAttempts += 1
            return .runAgain(wait: Int64(lockAttempts) * 100, attempt: lockAttempts)
        }
        return .fail
    }
}
