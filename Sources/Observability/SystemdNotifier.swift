public import Foundation
import Synchronization

/// systemd's readiness protocol (`Type=notify`), spoken directly: one datagram to the
/// `AF_UNIX` socket named by `$NOTIFY_SOCKET` per state change (`READY=1`, `WATCHDOG=1`,
/// `STOPPING=1`), as `sd_notify(3)` does, without linking libsystemd.
///
/// Why: with `Type=notify` systemd starts the units ordered after the daemon only once it
/// serves, and with `WatchdogSec=` it restarts a daemon whose loop stops answering, not
/// only one whose process died. Outside systemd (`$NOTIFY_SOCKET` unset) every call does
/// nothing. The variable is removed from the environment at start so the worker
/// processes the daemon spawns do not inherit it.
public final class SystemdNotifier: Sendable {
    private let address: [UInt8]?
    /// Half of `$WATCHDOG_USEC` (systemd's advice), or nil when no watchdog is set.
    public let watchdogInterval: Duration?
    private let lastWatchdog = Atomic<UInt64>(0)

    /// Reads (and unsets) `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    public static func fromEnvironment() -> SystemdNotifier {
        let environment = ProcessInfo.processInfo.environment
        let notifier = SystemdNotifier(environment: environment, pid: getpid())
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
        unsetenv("WATCHDOG_PID")
        return notifier
    }

    public init(environment: [String: String], pid: Int32) {
        if let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.hasPrefix("/") || path.hasPrefix("@") {
            var bytes = Array(path.utf8)
            if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
            address = bytes
        } else {
            address = nil
        }
        let watchdogPID = environment["WATCHDOG_PID"].flatMap { Int32($0) }
        if address != nil, let usec = environment["WATCHDOG_USEC"].flatMap({ UInt64($0) }), usec > 0,
            watchdogPID == nil || watchdogPID == pid
        {
            watchdogInterval = .microseconds(Int64(usec / 2))
        } else {
            watchdogInterval = nil
        }
    }

    /// Whether a service manager listens.
    public var isActive: Bool { address != nil }

    /// `READY=1`: startup finished, the service serves.
    public func ready(status: String? = nil) { send("READY=1" + (status.map { "\nSTATUS=" + $0 } ?? "")) }

    /// `STOPPING=1`: a graceful stop began.
    public func stopping() { send("STOPPING=1") }

    /// `WATCHDOG=1` if half the watchdog interval has passed since the last one; cheap
    /// enough to call on every turn of a loop (one atomic load when nothing is due).
    public func watchdogIfDue(nowNanoseconds: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        guard let watchdogInterval else { return }
        let (seconds, attoseconds) = watchdogInterval.components
        let interval = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
        let last = lastWatchdog.load(ordering: .relaxed)
        guard nowNanoseconds &- last >= interval || last == 0 else { return }
        lastWatchdog.store(nowNanoseconds, ordering: .relaxed)
        send("WATCHDOG=1")
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines) as one datagram; errors are
    /// ignored, as sd_notify's callers do.
    public func send(_ state: String) {
        guard let address else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard address.count < capacity else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: address)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count)
        let bytes = Array(state.utf8)
        _ = withUnsafePointer(to: &addr) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }
}
