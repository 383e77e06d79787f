import Foundation

/// What of a value that may carry a secret can be shown in a message, a log line or a span: only short, plain tokens
/// (a URL scheme, an option's name, a user name), never a value as it was given. A database URL, a file meant to
/// hold one, or an endpoint may hold a password anywhere (the user part, the query, a line of another format), so
/// messages name the variable or option that was read and what is wrong, not the text.
public enum SecretSafe {
    /// `text` when it is at most `maxLength` letters, digits, `.`, `_`, `-` or `+` (nothing a password needs to be
    /// kept from); otherwise a placeholder that says only that something is there.
    /// `also` adds characters a kind of value needs (`:[]` for an IPv6 host, `/` for a file's path).
    public static func token(_ text: some StringProtocol, maxLength: Int = 40, also: String = "") -> String {
        let allowed = "._-+" + also
        let plain = !text.isEmpty && text.count <= maxLength
            && text.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || allowed.unicodeScalars.contains($0) }
        return plain ? String(text) : "(hidden)"
    }

    /// A port as given, when it is digits only (a password typed where the port goes, after a missing `@`, is not shown).
    public static func digits(_ text: some StringProtocol) -> String {
        !text.isEmpty && text.count <= 10 && text.allSatisfy(\.isNumber) ? String(text) : "(not a number)"
    }

    /// A database's own message about a connection (which may quote the user, or echo what was typed), with every
    /// secret of the URL replaced: the password, and the user where it is not a plain token (`app:LEAK` from a user
    /// part `app%3ALEAK`).
    public static func scrub(_ message: String, password: String, user: String) -> String {
        var out = message
        if !password.isEmpty { out = out.replacingOccurrences(of: password, with: "***") }
        if token(user, maxLength: 64) != user, !user.isEmpty { out = out.replacingOccurrences(of: user, with: "(hidden)") }
        return out
    }
}
