import Testing
import VergeUsage

/// When the ledger's writer lets records gather before a transaction (see `GroupCommitter`).
@Suite struct ArrivalRateTests {
    let window = Duration.microseconds(100)
    let start = ContinuousClock.now

    /// `rate` after the writer took `records` records `times` times, `gap` apart, starting at `now`; returns the
    /// instant one gap after the last take.
    private func feed(
        _ rate: inout ArrivalRate, times: Int, records: Int = 1, gap: Duration, from now: ContinuousClock.Instant
    ) -> ContinuousClock.Instant {
        var now = now
        for _ in 0..<times {
            rate.took(records, at: now)
            now += gap
        }
        return now
    }

    @Test func aWriterWithoutHistoryDoesNotWait() {
        var rate = ArrivalRate(window: window)
        #expect(!rate.expectsAnother(now: start))
        rate.took(5, at: start)
        #expect(!rate.expectsAnother(now: start + .microseconds(10)))
    }

    @Test func recordsArrivingOftenerThanTheWindowAreWaitedFor() {
        var rate = ArrivalRate(window: window)
        let now = feed(&rate, times: 20, gap: .microseconds(50), from: start)
        #expect(rate.perSecond > 15_000)
        #expect(rate.expectsAnother(now: now))
    }

    @Test func recordsFurtherApartThanTheWindowAreNot() {
        var rate = ArrivalRate(window: window)
        let now = feed(&rate, times: 20, gap: .microseconds(300), from: start)
        #expect(!rate.expectsAnother(now: now))
    }

    @Test func aPauseOfTenWindowsForgetsTheRate() {
        var rate = ArrivalRate(window: window)
        let now = feed(&rate, times: 20, records: 4, gap: .microseconds(50), from: start)
        #expect(rate.expectsAnother(now: now + .microseconds(900)))
        #expect(!rate.expectsAnother(now: now + .milliseconds(1)))
    }

    @Test func aPauseStartsTheRateOver() {
        var rate = ArrivalRate(window: window)
        let busy = feed(&rate, times: 20, records: 10, gap: .microseconds(20), from: start)
        // After 3 ms without records, a single call is taken at its own rate: no wait for the next one.
        let now = feed(&rate, times: 2, gap: .milliseconds(3), from: busy + .milliseconds(3))
        #expect(rate.perSecond < 1000)
        #expect(!rate.expectsAnother(now: now - .milliseconds(3) + .microseconds(50)))
    }

    @Test func theRateFollowsTheLoadDown() {
        var rate = ArrivalRate(window: window)
        let busy = feed(&rate, times: 20, gap: .microseconds(20), from: start)
        #expect(rate.expectsAnother(now: busy))
        let now = feed(&rate, times: 20, gap: .microseconds(500), from: busy)
        #expect(!rate.expectsAnother(now: now))
    }
}
