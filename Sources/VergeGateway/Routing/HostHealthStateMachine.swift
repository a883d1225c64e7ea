/// Whether the gateway sends traffic to a host: active checks take it out after `unhealthyThreshold`
/// consecutive failures and bring it back after one success; a failed connection during a proxied call
/// takes it out at once, and 5xx answers the host produced itself (not its functions) count like failed checks
/// (passive ejection). When events carry the time and a ``Backoff``, an ejected host returns only once its backoff
/// has passed, and each ejection in a row doubles it, so a flapping host is tried less and less often.
public struct HostHealthStateMachine: Sendable, Equatable {
    public private(set) var isHealthy = true
    public private(set) var consecutiveFailures = 0
    public let unhealthyThreshold: Int
    /// Ejections since the host last stayed healthy for a whole `Backoff.maximum`.
    public private(set) var ejections = 0
    /// Before this moment a successful check does not bring the ejected host back.
    public private(set) var returnsAt: ContinuousClock.Instant?
    private var healthySince: ContinuousClock.Instant?

    public init(unhealthyThreshold: Int) {
        precondition(unhealthyThreshold >= 1)
        self.unhealthyThreshold = unhealthyThreshold
    }

    /// How long an ejected host stays out: `initial`, doubled per ejection in a row, at most `maximum`.
    public struct Backoff: Sendable, Equatable {
        public var initial: Duration
        public var maximum: Duration

        public init(initial: Duration, maximum: Duration) {
            self.initial = initial
            self.maximum = maximum
        }

        public static let none = Backoff(initial: .zero, maximum: .zero)

        public func delay(ejections: Int) -> Duration {
            guard ejections > 0 else { return .zero }
            var delay = initial
            for _ in 1..<min(ejections, 32) where delay < maximum { delay *= 2 }
            return min(delay, maximum)
        }
    }

    public enum Transition: Equatable { case none, becameHealthy, becameUnhealthy }

    public mutating func checkSucceeded(now: ContinuousClock.Instant? = nil, backoff: Backoff = .none) -> Transition {
        consecutiveFailures = 0
        if isHealthy {
            if let now, let since = healthySince, now - since >= backoff.maximum { ejections = 0 }
            return .none
        }
        if let now, let returnsAt, now < returnsAt { return .none }
        isHealthy = true
        returnsAt = nil
        healthySince = now
        return .becameHealthy
    }

    public mutating func checkFailed(now: ContinuousClock.Instant? = nil, backoff: Backoff = .none) -> Transition {
        consecutiveFailures += 1
        guard isHealthy, consecutiveFailures >= unhealthyThreshold else { return .none }
        return eject(now: now, backoff: backoff)
    }

    /// A proxied call could not reach the host, or the host dropped the connection before answering.
    public mutating func connectionFailed(now: ContinuousClock.Instant? = nil, backoff: Backoff = .none) -> Transition {
        consecutiveFailures = max(consecutiveFailures, unhealthyThreshold)
        guard isHealthy else { return .none }
        return eject(now: now, backoff: backoff)
    }

    /// The host itself answered a proxied call with a 5xx of its own (marked `x-verge-error`, never a function's).
    public mutating func hostFailed(now: ContinuousClock.Instant? = nil, backoff: Backoff = .none) -> Transition {
        checkFailed(now: now, backoff: backoff)
    }

    /// A proxied call got an answer that was not the host's own failure.
    public mutating func callSucceeded() {
        if isHealthy { consecutiveFailures = 0 }
    }

    private mutating func eject(now: ContinuousClock.Instant?, backoff: Backoff) -> Transition {
        isHealthy = false
        healthySince = nil
        ejections += 1
        returnsAt = now.map { $0 + backoff.delay(ejections: ejections) }
        return .becameUnhealthy
    }
}
