import Testing

@testable import VergeControlPlane

@Suite struct TokenBucketsTests {
    @Test func allowsABurstThenTheRate() {
        var buckets = TokenBuckets(limit: RateLimit(perSecond: 2, burst: 3))
        for _ in 0..<3 { #expect(buckets.take("a", now: 0) == nil) }
        let wait = buckets.take("a", now: 0)
        #expect(wait == 0.5)
        #expect(buckets.take("b", now: 0) == nil, "callers have buckets of their own")
        #expect(buckets.take("a", now: 0.5) == nil, "one token back after 1/rate seconds")
        #expect(buckets.take("a", now: 0.5) != nil)
        // Refills never exceed the burst.
        for _ in 0..<3 { #expect(buckets.take("a", now: 100) == nil) }
        #expect(buckets.take("a", now: 100) != nil)
    }

    @Test func forgetsFullBucketsBeyondTheCallerLimit() {
        var buckets = TokenBuckets(limit: RateLimit(perSecond: 1, burst: 1))
        buckets.maxCallers = 10
        for index in 0..<10 { _ = buckets.take("caller-\(index)", now: 0) }
        // Much later every bucket is full again: remembering them holds no information.
        _ = buckets.take("new", now: 1000)
        #expect(buckets.callers <= 2)
        // A caller that is still limited is remembered.
        _ = buckets.take("busy", now: 1000)
        for index in 0..<20 { _ = buckets.take("other-\(index)", now: 1000) }
        #expect(buckets.take("busy", now: 1000) != nil)
    }
}

@Suite struct LogQueriesTests {
    @Test func admitsAtMostTheConcurrentLimit() {
        let gate = LogQueries()
        for _ in 0..<LogQueries.maxConcurrent { #expect(gate.enter()) }
        #expect(!gate.enter())
        gate.leave()
        #expect(gate.enter())
    }
}
