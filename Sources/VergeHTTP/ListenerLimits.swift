/// What one listener accepts: how many connections at once, and how long one may sit idle (no request being
/// read or answered; a request head that trickles in counts as idle). Every server of Verge has both.
public struct ListenerLimits: Sendable, Equatable {
    /// Most open connections; one more is closed as soon as it is accepted. Default 1024.
    public var maxConnections: Int
    /// A connection with no request in progress for this long is closed. Default 60 s.
    public var idleTimeout: Duration

    public init(maxConnections: Int = 1024, idleTimeout: Duration = .seconds(60)) {
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
    }

    public static let `default` = ListenerLimits()
}
