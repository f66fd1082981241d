import Testing

@testable import Daemon

/// The output budget (`RoundPacing`): rounds as often as `publish.interval_ms` allows while
/// output is cheap, spaced so output stays within its share when it is not, never past
/// `publish.max_interval_ms`, and back to the minimum soon after a load drops.
struct RoundPacingTests {
    private let ms: UInt64 = 1_000_000

    @Test func cheapRoundsKeepTheMinimumGap() {
        var pacing = RoundPacing(minimumMilliseconds: 2, maximumMilliseconds: 1000, outputSharePercent: 20)
        #expect(pacing.gap == 2 * ms)
        for _ in 0..<10 {
            pacing.spent(50_000)  // 50 µs of output a round: 0.25 ms at 20 %
            pacing.roundPublished()
            #expect(pacing.gap == 2 * ms)
        }
    }

    @Test func costlyRoundsAreSpacedToTheShareAndCapped() {
        var pacing = RoundPacing(minimumMilliseconds: 2, maximumMilliseconds: 1000, outputSharePercent: 20)
        pacing.spent(3 * ms)
        pacing.spent(1 * ms)  // 4 ms of output in one round, counted together
        pacing.roundPublished()
        #expect(pacing.gap == 20 * ms)  // 4 ms is 20 % of 20 ms
        #expect(pacing.lastRoundCost == 4 * ms)
        pacing.spent(400 * ms)
        pacing.roundPublished()
        #expect(pacing.gap == 1000 * ms)  // 2 s wanted, capped
    }

    @Test func aLoadThatDropsIsFollowedWithinAFewRounds() {
        var pacing = RoundPacing(minimumMilliseconds: 2, maximumMilliseconds: 1000, outputSharePercent: 10)
        pacing.spent(50 * ms)
        pacing.roundPublished()
        #expect(pacing.gap == 500 * ms)
        pacing.roundPublished()  // a cheap round only halves what is counted
        #expect(pacing.gap == 250 * ms)
        var rounds = 1
        while pacing.gap > 2 * ms {
            pacing.roundPublished()
            rounds += 1
        }
        #expect(rounds <= 9)
    }

    @Test func theShareIsClampedAndTheMaximumNeverBelowTheMinimum() {
        var pacing = RoundPacing(minimumMilliseconds: 50, maximumMilliseconds: 10, outputSharePercent: 0)
        pacing.spent(100 * ms)
        pacing.roundPublished()
        #expect(pacing.gap == 50 * ms)
        #expect(pacing.outputShare == 0.01)
    }
}
