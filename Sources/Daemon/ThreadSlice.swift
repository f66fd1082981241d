import CLinuxShims
import Glibc

/// The scheduler slice the daemon asks for its two latency-critical threads: the loop
/// (which commits and acknowledges) and the ingest thread (which reads requests and sends
/// the ACKs).
///
/// Exists because every ACK passes through both threads, and on a busy machine (ten
/// workers flushing at a barrier on two cores) a thread that wakes can wait milliseconds
/// for a core behind threads that run their whole default slice. With a short slice
/// (EEVDF's custom slice, Linux 6.12 and later, no privilege needed) the thread gets an
/// earlier deadline and runs first when it wakes; it gets no more CPU than before. On an
/// older kernel the request is refused and the default stays; the loop logs which.
enum ThreadSlice {
    static let nanoseconds: UInt64 = 100_000

    /// Asks for the short slice for the calling thread; what was granted, for the log.
    static func request() -> String {
        CLinuxShims_requestShortSlice(nanoseconds) == 0
            ? "\(nanoseconds / 1000) µs"
            : "kernel default (sched_setattr refused: errno \(errno))"
    }
}
