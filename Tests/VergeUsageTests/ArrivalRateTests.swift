import Testing
import VergeUsage

/// When the ledger's writer lets records gather before a transaction (see `GroupCommitter`).
@Suite struct ArrivalRateTests {
    let window = Duration.microseconds(100)
    let start = ContinuousClock.now

    @Test func aWriterWithoutHistoryDoesNotWait() {
        var rate = ArrivalRate()
        #expect(!rate.expectsAnother(within: window, now: start))
        rate.took(5, at: start)
        #expect(!rate.expectsAnother(within: window, now: start + .microseconds(10)))
    }

    @Test func recordsArrivingOftenerThanTheWindowAreWaitedFor() {
        var rate = ArrivalRate()
        var now = start
        for _ in 0..<20 {
            rate.took(1, at: now)
            now += .microseconds(50)
        }
        #expect(rate.perSecond > 15_000)
        #expect(rate.expectsAnother(within: window, now: now))
    }

    @Test func recordsFurtherApartThanTheWindowAreNot() {
        var rate = ArrivalRate()
        var now = start
        for _ in 0..<20 {
            rate.took(1, at: now)
            now += .microseconds(300)
        }
        #expect(!rate.expectsAnother(within: window, now: now))
    }

    @Test func aPauseOfTenWindowsForgetsTheRate() {
        var rate = ArrivalRate()
        var now = start
        for _ in 0..<20 {
            rate.took(4, at: now)
            now += .microseconds(50)
        }
        #expect(rate.expectsAnother(within: window, now: now + .microseconds(900)))
        #expect(!rate.expectsAnother(within: window, now: now + .milliseconds(1)))
    }

    @Test func theRateFollowsTheLoadDown() {
        var rate = ArrivalRate()
        var now = start
        for _ in 0..<20 {
            rate.took(1, at: now)
            now += .microseconds(20)
        }
        for _ in 0..<20 {
            rate.took(1, at: now)
            now += .microseconds(500)
        }
        #expect(!rate.expectsAnother(within: window, now: now))
    }
}
