import Foundation
import Synchronization
import Testing

@testable import Daemon

/// The short slice is really granted to the thread that asks (the kernel's own account of
/// it, /proc/thread-self/sched), and only to that thread.
@Suite struct ThreadSliceTests {
    @Test func theAskingThreadGetsTheShortSliceAndOthersKeepTheDefault() {
        let outcome = Mutex<(granted: String, asked: UInt64?, other: UInt64?)>(("", nil, nil))
        let done = DispatchSemaphore(value: 0)
        Thread {
            let granted = ThreadSlice.request()
            let asked = ThreadSliceTests.slice()
            outcome.withLock { $0 = (granted, asked, $0.other) }
            done.signal()
        }.start()
        done.wait()
        Thread {
            let other = ThreadSliceTests.slice()
            outcome.withLock { $0.other = other }
            done.signal()
        }.start()
        done.wait()
        let result = outcome.withLock { $0 }
        guard result.granted == "100 µs" else {
            // An older kernel refuses: the log says so, and nothing else changes.
            #expect(result.granted.hasPrefix("kernel default (sched_setattr refused: errno "))
            return
        }
        // Without CONFIG_SCHED_DEBUG the kernel shows no slice; with it, both are checked.
        guard let asked = result.asked else { return }
        #expect(asked == ThreadSlice.nanoseconds)
        #expect(result.other != nil && result.other != ThreadSlice.nanoseconds)
    }

    /// `se.slice` of the calling thread, in nanoseconds (nil where the kernel shows none).
    static func slice() -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/thread-self/sched", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("se.slice") {
            return line.split(separator: ":").last.flatMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        }
        return nil
    }
}
