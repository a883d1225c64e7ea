import Logging
import NIOCore
import Synchronization

/// Counts a listener's open connections and refuses those beyond its limit.
public final class ConnectionLimiter: Sendable {
    public let limit: Int
    private let open = Mutex(0)
    private let refused = Mutex(0)
    private let logger: Logger

    public init(limit: Int, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    /// Open connections now.
    public var count: Int { open.withLock { $0 } }

    func acquire() -> Bool {
        let admitted = open.withLock { open in
            guard open < limit else { return false }
            open += 1
            return true
        }
        if !admitted {
            let total = refused.withLock { count in
                count += 1
                return count
            }
            // One line for the first refusal and then every 1000th, so a flood cannot flood the log too.
            if total == 1 || total % 1000 == 0 {
                logger.warning(
                    "connection refused: the listener is at its connection limit",
                    metadata: ["limit": "\(limit)", "refused.total": "\(total)"])
            }
        }
        return admitted
    }

    func release() {
        open.withLock { $0 -= 1 }
    }

    /// A handler for one accepted connection: it holds a place while the connection is open, or closes it.
    public func handler() -> ConnectionLimitHandler { ConnectionLimitHandler(limiter: self) }
}

/// Closes a connection accepted beyond its listener's limit; frees its place when it closes.
public final class ConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny
    private let limiter: ConnectionLimiter
    private var holdsPlace = false

    init(limiter: ConnectionLimiter) {
        self.limiter = limiter
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        admit(context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if holdsPlace {
            holdsPlace = false
            limiter.release()
        }
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        if holdsPlace {
            holdsPlace = false
            limiter.release()
        }
    }

    private func admit(_ context: ChannelHandlerContext) {
        guard !holdsPlace else { return }
        if limiter.acquire() {
            holdsPlace = true
        } else {
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension ConnectionLimitHandler: Sendable {}
