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
