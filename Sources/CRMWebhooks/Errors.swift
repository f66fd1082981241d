/// A webhook payload or mapping file that cannot be used, with the field that is wrong.
///
/// Why a struct with a field: the HTTP answer, the log and the test all need to say
/// *where* the problem is (`current.value: expected a number, got a string`), as the
/// daemon's own rejections do.
public struct PayloadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dotted path of the wrong field, e.g. `[2].propertyValue` or `mapping.pipelines.1.stages`.
    public var field: String
    public var reason: String
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { "\(field): \(reason)" }
}

/// A request whose signature or credentials do not check out: answered 401, changes nothing.
///
/// Why its own type: it must never be confused with a bad payload (422/400), because a
/// vendor retries those and an attacker must learn nothing from the difference.
public struct AuthenticationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { reason }
}
