import Testing

@testable import Daemon

/// The output budget (`RoundPacing`): rounds as often as `publish.interval_ms` allows while
/// output is cheap, spaced so output stays within its share when it is not, never past
/// `publish.max_interval_ms`, and back to the minimum soon after a load drops; an idle
/// loop lends output its spare time up to `publish.busy_limit_percent`.
struct RoundPacingTests {
    private let ms: UInt64 = 1_000_000

    @Test func cheapRoundsKeepTheMinimumGap() {
        var pacing = RoundPacing(minimumMilliseconds: 2, maximumMilliseconds: 1000, outputSharePercent: 20)
        #expect(pacing.gap == 2 * ms)
        for _ in 0..<10 {
            pacing.spent(50_000)  // 50 µs of output a round: 0.25 ms at 20 %
            pacing.roundPublished(at: 0)
            #expect(pacing.gap == 2 * ms)
        }
    }

    @Test func costlyRoundsAreSpacedToTheShareAndCapped() {
        var pacing = RoundPacing(minimumMilliseconds: 2, maximumMilliseconds: 1000, outputSharePercent: 20)
        pacing.spent(3 * ms)
        pacing.spent(1 * ms)  // 4 ms of output in one round, counted together
        pacing.roundPublished(at: 0)
        #expect(pacing.gap == 20 * ms)  // 4 ms is 20 % of 20 ms
        #expect(pacing.lastRoundCost == 4 * ms)
        pacing.spent(400 * ms)
        pacing.roundPublished(at: 0)
        #expect(pacing.gap == 1000 * ms)  // 2 s wanted, capped
    }

    @Test func aLoadThatDropsIsFollowedWithinAFewRounds() {
        var pacing = RoundPacing(minimumMilliseconds: 2, maximumMilliseconds: 1000, outputSharePercent: 10)
        pacing.spent(50 * ms)
        pacing.roundPublished(at: 0)
        #expect(pacing.gap == 500 * ms)
        pacing.roundPublished(at: 0)  // a cheap round only halves what is counted
        #expect(pacing.gap == 250 * ms)
        var rounds = 1
        while pacing.gap > 2 * ms {
            pacing.roundPublished(at: 0)
            rounds += 1
        }
        #expect(rounds <= 9)
    }

    @Test func theShareIsClampedAndTheMaximumNeverBelowTheMinimum() {
        var pacing = RoundPacing(minimumMilliseconds: 50, maximumMilliseconds: 10, outputSharePercent: 0)
        pacing.spent(100 * ms)
        pacing.roundPublished(at: 0)
        #expect(pacing.gap == 50 * ms)
        #expect(pacing.outputShare == 0.01)
    }

    /// Share 20 %, busy limit 70 %: one round of 2 ms output published at 100 ms.
    private func busyLimitedAfterAFirstRound() -> RoundPacing {
        var pacing = RoundPacing(
            minimumMilliseconds: 1,
            maximumMilliseconds: 1000,
            outputSharePercent: 20,
            busyLimitPercent: 70
        )
        pacing.spent(2 * ms)
        pacing.roundPublished(at: 100 * ms)
        return pacing
    }

    @Test func anIdleLoopLendsOutputItsSpareTimeUpToTheBusyLimit() {
        var pacing = busyLimitedAfterAFirstRound()
        #expect(pacing.gap == 10 * ms)  // the first round: no window yet, the share alone
        // 10 ms since: 6 ms idle in the poll, 2 ms of output, so 2 ms (20 %) of other work.
        pacing.waited(6 * ms)
        pacing.spent(2 * ms)
        pacing.roundPublished(at: 110 * ms)
        #expect(abs(pacing.share - 0.5) < 1e-9)  // 70 % busy at most, minus the 20 % other work
        #expect(pacing.gap == 4 * ms)  // 2 ms is 50 % of 4 ms
    }

    @Test func aLoopThatNeverIdlesKeepsTheShareAlone() {
        var pacing = busyLimitedAfterAFirstRound()
        pacing.spent(2 * ms)  // 10 ms of loop: 2 ms output, 8 ms ingest, no idle
        pacing.roundPublished(at: 110 * ms)
        #expect(pacing.share == 0.2)
        #expect(pacing.gap == 10 * ms)
        // With no busy limit, idling changes nothing either.
        var shareOnly = RoundPacing(minimumMilliseconds: 1, maximumMilliseconds: 1000, outputSharePercent: 20)
        shareOnly.spent(2 * ms)
        shareOnly.roundPublished(at: 100 * ms)
        shareOnly.waited(8 * ms)
        shareOnly.spent(2 * ms)
        shareOnly.roundPublished(at: 110 * ms)
        #expect(shareOnly.gap == 10 * ms)
    }
}
