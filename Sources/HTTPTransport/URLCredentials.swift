/// Credentials in a URL (`https://user:secret@host/...`) never reach a log line, a span or an error message.
public enum URLCredentials {
    /// The URL with its user information replaced by `REDACTED:REDACTED`, as OpenTelemetry's HTTP semantic
    /// conventions require for `url.full`; a URL without user information is returned as it is.
    public static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let authorityEnd = url[schemeEnd.upperBound...].firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? url.endIndex
        guard let at = url[schemeEnd.upperBound..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<schemeEnd.upperBound]) + "REDACTED:REDACTED" + String(url[at...])
    }
}
