import Dispatch
import Foundation
import Synchronization

/// What `/health`, `/live` and `/ready` answer, kept apart from the HTTP listener that
/// serves them.
///
/// Why: a listener on its own threads answers even when the process's real work is stuck,
/// as libzmq's I/O thread accepted TCP probes to a stuck daemon. So the work itself writes
/// the signals here: the loop thread stamps `loopAnswered()` on every turn (a liveness
/// stamp the listener only reads), the daemon marks its state restored, and the loop says
/// whether every worker slot has a caught-up worker. `/ready` is all three; `/live` is the
/// stamp alone; `/health` is the listener itself.
public final class ProbeState: Sendable {
    private let restored = Atomic<Bool>(false)
    private let caughtUp = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let lastAnswer = Atomic<UInt64>(0)
    private let frozen = Atomic<Bool>(false)
    /// How long the loop may go without a stamp before it counts as not answering.
    public let liveTimeoutNanoseconds: UInt64

    /// `liveTimeout` should exceed the loop's longest regular wait (its poll timeout is at
    /// most one heartbeat interval).
    public init(liveTimeout: Duration = .seconds(10)) {
        let (seconds, attoseconds) = liveTimeout.components
        liveTimeoutNanoseconds = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// From the loop thread, every turn. With the test hook armed (`freezeLoop`), this is
    /// where the loop stops answering: it sleeps here until `thawLoop`.
    public func loopAnswered() {
        while frozen.load(ordering: .relaxed) { usleep(5_000) }
        lastAnswer.store(Self.now(), ordering: .relaxed)
    }

    public func markRestored() { restored.store(true, ordering: .relaxed) }
    public func setCaughtUp(_ value: Bool) { caughtUp.store(value, ordering: .relaxed) }
    public func markStopping() { stopping.store(true, ordering: .relaxed) }

    /// Test hook (`dealstream daemon --debug-freeze-signal`): the loop blocks at its next
    /// stamp, as a loop stuck in a call would.
    public func freezeLoop() { frozen.store(true, ordering: .relaxed) }
    public func thawLoop() { frozen.store(false, ordering: .relaxed) }
    public var isLoopFrozen: Bool { frozen.load(ordering: .relaxed) }

    /// Seconds since the loop last answered (nil: never).
    public var loopSilence: Double? {
        let last = lastAnswer.load(ordering: .relaxed)
        return last == 0 ? nil : Double(Self.now() &- last) / 1e9
    }

    public var isRestored: Bool { restored.load(ordering: .relaxed) }
    public var isCaughtUp: Bool { caughtUp.load(ordering: .relaxed) }

    /// The loop answered within the live timeout.
    public var isLive: Bool {
        let last = lastAnswer.load(ordering: .relaxed)
        return last != 0 && Self.now() &- last < liveTimeoutNanoseconds
    }

    /// Restored, every slot caught up, the loop answering, and not stopping.
    public var isReady: Bool { isRestored && isCaughtUp && isLive && !stopping.load(ordering: .relaxed) }

    /// The probe answer's body: each signal by name.
    public var summary: String {
        let silence = loopSilence.map { String(format: "%.3f", $0) } ?? "null"
        return
            "{\"ready\":\(isReady),\"live\":\(isLive),\"restored\":\(isRestored),\"workers_caught_up\":\(isCaughtUp),"
            + "\"loop_silent_seconds\":\(silence),\"stopping\":\(stopping.load(ordering: .relaxed))}"
    }
}
