/// Whether the gateway sends traffic to a host: active checks take it out after `unhealthyThreshold`
/// consecutive failures and bring it back after one success; a failed connection during a proxied call
/// takes it out at once (passive ejection).
public struct HostHealthStateMachine: Sendable, Equatable {
    public private(set) var isHealthy = true
    public private(set) var consecutiveFailures = 0
    public let unhealthyThreshold: Int

    public init(unhealthyThreshold: Int) {
        precondition(unhealthyThreshold >= 1)
        self.unhealthyThreshold = unhealthyThreshold
    }

    public enum Transition: Equatable { case none, becameHealthy, becameUnhealthy }

    public mutating func checkSucceeded() -> Transition {
        consecutiveFailures = 0
        guard !isHealthy else { return .none }
        isHealthy = true
        return .becameHealthy
    }

    public mutating func checkFailed() -> Transition {
        consecutiveFailures += 1
        guard isHealthy, consecutiveFailures >= unhealthyThreshold else { return .none }
        isHealthy = false
        return .becameUnhealthy
    }

    /// A proxied call could not reach the host.
    public mutating func connectionFailed() -> Transition {
        consecutiveFailures = max(consecutiveFailures, unhealthyThreshold)
        guard isHealthy else { return .none }
        isHealthy = false
        return .becameUnhealthy
    }
}
