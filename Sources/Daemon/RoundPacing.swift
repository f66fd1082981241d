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
///
/// The share is a floor, not a ceiling, when the loop has time to spare: output may also
/// take the time the loop spent waiting for work (idle in its poll), as long as the loop
/// as a whole stays at most `busyLimit` busy. At 10 k events/s in small requests ingest
/// keeps the loop perhaps 15 % busy, so output may take about half of it and rounds come
/// at a fraction of the gap the share alone would give; under a bulk import the loop is
/// never idle and the share alone applies. Ingest does not wait for output either way:
/// the loop takes requests between slices of it (`DaemonLoop`).
struct RoundPacing {
    let minimumGap: UInt64
    let maximumGap: UInt64
    /// The share of the loop's time output may take, in (0, 1].
    let outputShare: Double
    /// How busy output may make the loop when it would otherwise be idle, in [0, 1] (0:
    /// `outputShare` only).
    let busyLimit: Double
    /// Output nanoseconds spent since the last round (results taken in, the round published).
    private var pending: UInt64 = 0
    /// Nanoseconds the loop waited in its poll since the last round.
    private var idle: UInt64 = 0
    /// When the last round was published (monotonic nanoseconds; 0: none yet).
    private var lastRoundAt: UInt64 = 0
    /// The share output was given for the current gap (for logs).
    private(set) var share: Double
    /// The output cost of a round as the pacing counts it, in nanoseconds: a costlier
    /// round counts at once, a cheaper one halves it (so a load that drops is followed
    /// within a few rounds, and one cheap round alone does not shrink the gap).
    private var smoothed: Double = 0
    private(set) var gap: UInt64
    /// The output cost of the last round published, in nanoseconds (for logs).
    private(set) var lastRoundCost: UInt64 = 0

    init(minimumMilliseconds: Int, maximumMilliseconds: Int, outputSharePercent: Int, busyLimitPercent: Int = 0) {
        minimumGap = UInt64(minimumMilliseconds) * 1_000_000
        maximumGap = max(minimumGap, UInt64(maximumMilliseconds) * 1_000_000)
        outputShare = Double(min(max(outputSharePercent, 1), 100)) / 100
        busyLimit = Double(min(max(busyLimitPercent, 0), 100)) / 100
        share = outputShare
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

    /// Adds time (nanoseconds) the loop waited in its poll with nothing to do.
    mutating func waited(_ nanoseconds: UInt64) { idle &+= nanoseconds }

    /// A round was published at `now` (monotonic nanoseconds): its whole output cost is
    /// known, and the next gap follows. The share is `outputShare`, or more when the loop
    /// idled: what the window since the last round left after idling and output (ingest,
    /// fan-out, waiting for a core) is taken from `busyLimit`.
    mutating func roundPublished(at now: UInt64) {
        smoothed = max(Double(pending), smoothed / 2)
        lastRoundCost = pending
        share = outputShare
        let window = now &- lastRoundAt
        if busyLimit > outputShare && lastRoundAt > 0 && window > 0 {
            let other = max(0, 1 - Double(idle &+ pending) / Double(window))
            share = max(outputShare, busyLimit - other)
        }
        pending = 0
        idle = 0
        lastRoundAt = now
        let wanted = smoothed / share
        gap = UInt64(min(max(wanted, Double(minimumGap)), Double(maximumGap)))
    }
}
