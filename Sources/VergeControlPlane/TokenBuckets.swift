/// Token buckets by caller: a pure state machine, fed the time by its owner.
struct TokenBuckets: Sendable {
    let limit: RateLimit
    /// Most callers remembered. Beyond it, buckets that are full again are forgotten (they hold no information);
    /// if that is not enough (a flood of new callers), the least recently seen go until half remain, so memory
    /// stays bounded and the clean-up runs rarely.
    var maxCallers = 10_000
    private var buckets: [String: (tokens: Double, at: Double)] = [:]

    init(limit: RateLimit) {
        self.limit = limit
    }

    /// Takes one token for `caller` at time `now` (seconds). `nil` when allowed; otherwise how long until a token.
    mutating func take(_ caller: String, now: Double) -> Double? {
        var bucket = buckets[caller] ?? (Double(limit.burst), now)
        bucket.tokens = min(Double(limit.burst), bucket.tokens + max(0, now - bucket.at) * limit.perSecond)
        bucket.at = now
        guard bucket.tokens >= 1 else {
            buckets[caller] = bucket
            return (1 - bucket.tokens) / limit.perSecond
        }
        bucket.tokens -= 1
        buckets[caller] = bucket
        if buckets.count > maxCallers { forgetFull(now: now) }
        return nil
    }

    var callers: Int { buckets.count }

    private mutating func forgetFull(now: Double) {
        let limit = self.limit
        buckets = buckets.filter { _, bucket in
            bucket.tokens + (now - bucket.at) * limit.perSecond < Double(limit.burst)
        }
        guard buckets.count > maxCallers * 9 / 10 else { return }
        let keep = buckets.sorted { $0.value.at > $1.value.at }.prefix(maxCallers / 2)
        buckets = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
    }
}
