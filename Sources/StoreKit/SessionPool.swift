import BlockingThreads
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
    public struct Faults: Sendable {
        public var reconnectWindowMilliseconds: Int64
        public var lockRetries: Int

        public init(reconnectWindowMilliseconds: Int64 = 30_000, lockRetries: Int = 5) {
            self.reconnectWindowMilliseconds = reconnectWindowMilliseconds
            self.lockRetries = lockRetries
        }
    }

    private let slots: ResourcePool<Slot>
    private let faults: Faults
    private let logger: Logger
    /// The database as messages show it (no password).
    private let described: String
    private let state = PoolState()

    /// `connect` runs on a slot's own thread whenever the slot has no open connection; `close` on the same thread.
    public init(size: Int, threadName: String, faults: Faults, described: String, logger: Logger,
                connect: @escaping @Sendable () throws -> Connection, close: @escaping @Sendable (Connection) -> Void) {
        self.faults = faults
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
        var lockAttempts = 0
        var lostSince: Date?
        var logged = false
        var backoff: UInt64 = 100_000_000
        while true {
            do {
                let value = try await slot.thread.run { try body(try slot.open()) }
                state.markReached()
                return value
            } catch let error as StoreFailure where error.isConnectionLost && state.everReached {
                let since = lostSince ?? Date()
                lostSince = since
                guard Date().timeIntervalSince(since) * 1000 < Double(faults.reconnectWindowMilliseconds) else { throw error }
                if !logged {
                    logged = true
                    logger.warning("database connection lost; reconnecting", metadata: ["error": "\(error)", "database": "\(described)"])
                }
                state.countReconnect()
                _ = try? await slot.thread.run { slot.reset() }
                try await Task.sleep(nanoseconds: backoff)
                backoff = min(backoff * 2, 2_000_000_000)
            } catch let error as StoreFailure where error.isTransientLock && lockAttempts < faults.lockRetries {
                lockAttempts += 1
                state.countLockRetry()
                logger.warning("database lock conflict; running the statement again", metadata: [
                    "error": "\(error)", "attempt": "\(lockAttempts)",
                ])
                try await Task.sleep(nanoseconds: UInt64(lockAttempts) * 100_000_000)
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
