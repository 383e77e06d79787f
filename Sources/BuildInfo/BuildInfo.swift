/// The project's one version: every executable's `--version`, the telemetry's `service.version` and scope version,
/// the HTTP User-Agent, and (read by the Makefile) the container image's tag.
public enum BuildInfo {
    public static let version = "0.1.0"
    /// `User-Agent` of every request the project sends (to Binance, to a collector).
    public static let userAgent = "binance-extractor/\(version)"
}
