import BinanceAPI
import BinanceSimulator
import Clocks

/// A `BinanceSimulator` on a free loopback port, for one test.
public struct SimulatorFixture: Sendable {
    public let simulator: BinanceSimulator
    public let baseURL: String

    public static func start(configuration: BinanceSimulator.Configuration = .init(), clock: any WallClock = SystemClock(),
                             market: SimulatedMarket? = nil) async throws -> SimulatorFixture {
        let simulator = BinanceSimulator(configuration: configuration, market: market, clock: clock)
        try await simulator.start()
        return SimulatorFixture(simulator: simulator, baseURL: await simulator.baseURL)
    }

    public func stop() async { await simulator.stop() }
}
