public import DealModel

/// The vendors' timestamp forms, normalised to RFC 3339 UTC and epoch milliseconds.
///
/// Why: HubSpot sends epoch milliseconds (as numbers or strings) in webhooks and ISO
/// strings from its REST API, Pipedrive v1 `2026-11-02 09:00:00` (UTC), Pipedrive v2 and
/// Salesforce ISO strings, Salesforce dates `YYYY-MM-DD` or epoch days; the daemon takes
/// RFC 3339 only.
public enum VendorTime {
    /// Epoch milliseconds as RFC 3339 (`2026-11-02T09:00:00.123Z`, no fraction when whole seconds).
    public static func rfc3339(milliseconds ms: Int64) -> String {
        Timestamp.formatRFC3339(Instant(nanoseconds: Int128(ms) * 1_000_000))
    }

    /// Milliseconds of an RFC 3339 text.
    public static func milliseconds(rfc3339 text: String) -> Int64? {
        guard let instant = Timestamp.parseRFC3339(text) else { return nil }
        return Int64(instant.nanoseconds / 1_000_000)
    }

    /// Any of the vendors' forms of an instant as RFC 3339: epoch milliseconds (number or
    /// digits), RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or a date `YYYY-MM-DD` (midnight UTC).
    public static func normalise(_ value: JSONValue) -> String? {
        switch value {
        case .int(let ms):
            if ms > 100_000 { return rfc3339(milliseconds: ms) }
            // Small numbers are epoch days (Salesforce dates); negative ones are no vendor's form.
            guard ms >= 0 else { return nil }
            return rfc3339(milliseconds: ms * 86_400_000)
        case .double(let ms):
            // Any double JSON can spell (1e300 included) must not trap converting to Int64.
            guard ms.isFinite, ms >= -9.2e18, ms <= 9.2e18 else { return nil }
            return rfc3339(milliseconds: Int64(ms))
        case .string(let s): return normalise(s)
        default: return nil
        }
    }

    /// The string forms of `normalise(_:)`.
    public static func normalise(_ text: String) -> String? {
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let ms = Int64(text) {
            return rfc3339(milliseconds: ms)
        }
        if let ms = milliseconds(rfc3339: text) { return rfc3339(milliseconds: ms) }
        if text.utf8.count == 19, Array(text.utf8)[10] == UInt8(ascii: " ") {
            let iso = String(text.prefix(10)) + "T" + String(text.suffix(8)) + "Z"
            if let ms = milliseconds(rfc3339: iso) { return rfc3339(milliseconds: ms) }
        }
        if Timestamp.parseDate(text) != nil { return text + "T00:00:00Z" }
        return nil
    }
}
