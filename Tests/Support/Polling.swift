import Foundation

/// Polls `attempt` every 50 ms until it gives a value, for at most `timeout` seconds; nil
/// if it never did.
///
/// The deadline is checked after an attempt, never instead of one: `swift test` runs the
/// blocking tests on the same two cooperative threads, and a task that wakes from its
/// pause past the deadline must still ask once before it gives up.
public func poll<T>(timeout: Double, _ attempt: () async throws -> T?) async rethrows -> T? {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if let value = try await attempt() { return value }
        guard Date() < deadline else { return nil }
        try? await Task.sleep(for: .milliseconds(50))
    }
}
