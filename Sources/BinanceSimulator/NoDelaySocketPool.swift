import FlyingFox
import FlyingSocks
import Foundation

/// FlyingFox's socket pool, plus TCP_NODELAY on every connection it sees.
///
/// The server writes a response's head and body separately; with Nagle's algorithm on, the body waits for the
/// client's ACK of the head, which a delaying client sends only after ~40 ms. Binance's servers do not add that
/// delay, so neither may the simulator (it would make every benchmark measure the delay instead of the client).
struct NoDelaySocketPool: AsyncSocketPool {
    let inner: any AsyncSocketPool

    func prepare() async throws { try await inner.prepare() }
    func run() async throws { try await inner.run() }

    func suspendSocket(_ socket: Socket, untilReadyFor events: Socket.Events) async throws {
        var on: Int32 = 1
        // Harmless on the listening socket and on sockets that already have it.
        _ = setsockopt(socket.file.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        try await inner.suspendSocket(socket, untilReadyFor: events)
    }
}
