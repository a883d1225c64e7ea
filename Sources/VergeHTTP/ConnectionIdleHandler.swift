import NIOCore

/// Fires `IdleStateHandler.IdleStateEvent.all` when a connection has neither read nor flushed anything for
/// `timeout`, and again every `timeout` it stays so (the handlers after it decide whether to close). What NIO's
/// `IdleStateHandler(allTimeout:)` does, without its per-write promise and callback (three per proxied response):
/// activity is the time of the last read or flush, and one task is scheduled at a time.
final class ConnectionIdleHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private let timeout: TimeAmount
    private var lastActivity = NIODeadline.uptimeNanoseconds(0)
    private var scheduled: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        lastActivity = context.eventLoop.now
        context.fireChannelReadComplete()
    }

    func flush(context: ChannelHandlerContext) {
        lastActivity = context.eventLoop.now
        context.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard scheduled == nil else { return }
        lastActivity = context.eventLoop.now
        schedule(context, at: lastActivity + timeout)
    }

    private func stop() {
        scheduled?.cancel()
        scheduled = nil
    }

    private func schedule(_ context: ChannelHandlerContext, at time: NIODeadline) {
        scheduled = context.eventLoop.assumeIsolated().scheduleTask(deadline: time) { [weak self, weak context] in
            guard let self, let context, self.scheduled != nil else { return }
            self.check(context)
        }
    }

    private func check(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else {
            scheduled = nil
            return
        }
        let now = context.eventLoop.now
        let due = lastActivity + timeout
        if due > now {
            schedule(context, at: due)
            return
        }
        schedule(context, at: now + timeout)
        context.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.all)
    }
}

@available(*, unavailable)
extension ConnectionIdleHandler: Sendable {}
