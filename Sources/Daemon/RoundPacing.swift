import Glibc

/// How often publication rounds (and so barriers) run: often under a light load, so an
/// event is published at once, and less often under a heavy one, so output stays within
/// a budget.
///
/// The output work of a round (taking the workers' results, rendering and publishing the
/// changed series) grows with the number of series changed, not with the events behind
/// them: a series touched by a thousand events in one round is rendered and published
/// once. So the daemon measures what its output costs and keeps rounds far enough apart
/// that it takes at most `outputShare` of the loop's time: the gap after a round is the
/// cost of a round as counted (`smoothed`) divided by the share, between `publish.interval_ms` and
/// `publish.max_interval_ms`. Output is counted in the loop thread's CPU time
/// (`threadCPUTime`), not wall time: on a machine shared by eleven processes, the time a
/// thread waits for a core is not work its output made. At 100 events/s a round costs
/// microseconds and every event is published within the minimum gap; a bulk import makes
/// rounds grow towards the maximum, and `_progress` keeps going out every
/// `publish.idle_progress_ms` meanwhile.
struct RoundPacing {
    let minimumGap: UInt64
    let maximumGap: UInt64
    /// The share of the loop's time output may take, in (0, 1].
    let outputShare: Double
    /// Output nanoseconds spent since the last round (results taken in, the round published).
    private var pending: UInt64 = 0
    /// The output cost of a round as the pacing counts it, in nanoseconds: a costlier
    /// round counts at once, a cheaper one halves it (so a load that drops is followed
    /// within a few rounds, and one cheap round alone does not shrink the gap).
    private var smoothed: Double = 0
    private(set) var gap: UInt64
    /// The output cost of the last round published, in nanoseconds (for logs).
    private(set) var lastRoundCost: UInt64 = 0

    init(minimumMilliseconds: Int, maximumMilliseconds: Int, outputSharePercent: Int) {
        minimumGap = UInt64(minimumMilliseconds) * 1_000_000
        maximumGap = max(minimumGap, UInt64(maximumMilliseconds) * 1_000_000)
        outputShare = Double(min(max(outputSharePercent, 1), 100)) / 100
        gap = minimumGap
    }

    /// The calling thread's CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
    static func threadCPUTime() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// Adds output work (nanoseconds) done for the round being gathered.
    mutating func spent(_ nanoseconds: UInt64) { pending &+= nanoseconds }

    /// A round was published: its whole output cost is known, and the next gap follows.
    mutating func roundPublished() {
        smoothed = max(Double(pending), smoothed / 2)
        lastRoundCost = pending
        pending = 0
        let wanted = smoothed / outputShare
        gap = UInt64(min(max(wanted, Double(minimumGap)), Double(maximumGap)))
    }
}
