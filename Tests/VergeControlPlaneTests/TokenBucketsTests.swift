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
    }

    @Test func aFloodOfNewCallersKeepsMemoryBounded() {
        var buckets = TokenBuckets(limit: RateLimit(perSecond: 0.001, burst: 1))
        buckets.maxCallers = 100
        for index in 0..<10_000 {
            _ = buckets.take("flood-\(index)", now: Double(index) / 1000)
            #expect(buckets.callers <= 101)
        }
        // The most recent callers are still limited.
        #expect(buckets.take("flood-9999", now: 10) != nil)
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
