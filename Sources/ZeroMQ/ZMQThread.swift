import CLinuxShims
import Foundation
import Synchronization

/// A dedicated OS thread for blocking ZeroMQ work.
///
/// Blocking calls such as `zmq_poll` must never run on Swift's cooperative thread pool
/// (on two cores they would starve every task). Each socket group gets one of these
/// threads; the sockets are created, used and closed inside `body`, so they never
/// cross threads.
public final class ZMQThread: Sendable {
    private let finished = DispatchSemaphore(value: 0)

    /// Starts `body` on a new thread named `name` (the kernel keeps 15 bytes: `ds-loop`,
    /// `ds-ingest`; what `top -H`, `perf` and `/proc/<pid>/task/*/comm` show).
    public init(name: String, body: @escaping @Sendable () -> Void) {
        let finished = self.finished
        let thread = Thread {
            _ = CLinuxShims_setThreadName(name)
            body()
            finished.signal()
        }
        thread.name = name
        thread.stackSize = 4 << 20
        thread.start()
    }

    /// Blocks the calling (non-cooperative) thread until `body` has returned.
    public func join() {
        finished.wait()
        finished.signal()
    }

    /// Waits for `body` to return without blocking a cooperative thread.
    public func joined() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.join()
                continuation.resume()
            }
        }
    }
}

/// A stop request that one thread sets and a socket thread's polling loop reads.
///
/// Socket threads poll with a timeout and check this between polls, so a stop takes
/// effect within one poll interval, after the requests in hand are answered.
public final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public func set() { value.store(true, ordering: .releasing) }
    public var isSet: Bool { value.load(ordering: .acquiring) }
}
