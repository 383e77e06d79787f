/// Credentials in a URL (`https://user:secret@host/...`) never reach a log line, a span or an error message.
public enum URLCredentials {
    /// The URL with its user information replaced by `REDACTED:REDACTED`, as OpenTelemetry's HTTP semantic
    /// conventions require for `url.full`; a URL without user information is returned as it is.
    /// Without a scheme (`user:secret@host:4318`), the text up to the first `/`, `?` or `#` is taken as the authority.
    public static func redacted(_ url: String) -> String {
        let authorityStart = url.range(of: "://")?.upperBound ?? url.startIndex
        let authorityEnd = url[authorityStart...].firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? url.endIndex
        guard let at = url[authorityStart..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<authorityStart]) + "REDACTED:REDACTED" + String(url[at...])
    }
}

/// The parts of an `http(s)://` or `ws(s)://` URL this project reads, without Foundation's URL types: those run every
/// host through ICU's IDNA tables, whose megabytes then stay resident for the life of a long-running process, for
/// hosts that are ASCII here (Binance's, a proxy's, a test server's).
public enum URLParts {
    /// The host of `scheme://[userinfo@]host[:port][/path][?query]`, lowercased; an IPv6 literal without its brackets.
    /// Nil when there is no `://`, or the host is empty or not plain ASCII.
    public static func host(_ url: String) -> String? {
        guard let (_, hostPort) = authority(url) else { return nil }
        let host: Substring
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { return nil }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
        } else {
            host = hostPort.prefix { $0 != ":" }
        }
        guard !host.isEmpty, host.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 }) else { return nil }
        return host.lowercased()
    }

    /// The port a URL names, else its scheme's (80 for http and ws, 443 for https and wss); nil without a scheme.
    public static func port(_ url: String) -> Int? {
        guard let (scheme, hostPort) = authority(url) else { return nil }
        let afterHost = hostPort.hasPrefix("[") ? hostPort.drop { $0 != "]" }.dropFirst() : hostPort.drop { $0 != ":" }
        if afterHost.hasPrefix(":"), let port = Int(afterHost.dropFirst()), (1...65_535).contains(port) { return port }
        return scheme == "http" || scheme == "ws" ? 80 : 443
    }

    /// The lowercased scheme, and the authority's `host[:port]` (user information dropped); nil without `://`.
    private static func authority(_ url: String) -> (scheme: String, hostPort: Substring)? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostPort = authority.lastIndex(of: "@").map { authority[authority.index(after: $0)...] } ?? authority
        return (url[..<schemeEnd.lowerBound].lowercased(), hostPort)
    }
}
