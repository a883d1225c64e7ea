/// What one listener accepts: how many connections at once, how long one may sit idle (no request being read or
/// answered), and how long a request head may take to arrive once its first byte has (so a client trickling a head
/// byte by byte cannot hold a connection: slowloris). Every server of Verge has all three.
public struct ListenerLimits: Sendable, Equatable {
    /// Most open connections; one more is closed as soon as it is accepted. Default 1024.
    public var maxConnections: Int
    /// A connection with no request in progress for this long is closed. Default 60 s.
    public var idleTimeout: Duration
    /// A request head must be complete this long after its first byte arrived, or the connection is closed.
    /// Default 10 s.
    public var headerTimeout: Duration

    public init(
        maxConnections: Int = 1024, idleTimeout: Duration = .seconds(60), headerTimeout: Duration = .seconds(10)
    ) {
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
    }

    public static let `default` = ListenerLimits()
}
