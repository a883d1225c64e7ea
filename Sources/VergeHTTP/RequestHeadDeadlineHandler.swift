import Logging
import NIOCore
import NIOHTTP1

/// Slowloris protection: once the first byte of a request head arrives, the whole head must follow within the
/// listener's `headerTimeout`, or the connection is closed. The idle timeout alone cannot do this — a client sending
/// one byte every few seconds is never idle. Sits right before the HTTP/1 decoder and sees raw bytes;
/// `RequestFramingHandler` (right after it) says when the head was parsed and when the request ended.
final class RequestHeadDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        /// Between requests: the next byte starts a head.
        case awaitingHead
        case readingHead(Scheduled<Void>)
        /// A head was parsed; its body (if any) is being read or the response written.
        case inRequest
    }

    private var state = State.awaitingHead
    private let timeout: TimeAmount
    private let logger: Logger

    init(timeout: TimeAmount, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .awaitingHead = state, unwrapInboundIn(data).readableBytes > 0 {
            let channel = context.channel
            let logger = self.logger
            let timeout = self.timeout
            let deadline = context.eventLoop.scheduleTask(in: timeout) {
                logger.info(
                    "connection closed: request head not complete in time",
                    metadata: ["timeout.ms": "\(timeout.nanoseconds / 1_000_000)"])
                channel.close(promise: nil)
            }
            state = .readingHead(deadline)
        }
        context.fireChannelRead(data)
    }

    func headReceived(context: ChannelHandlerContext) {
        if case .readingHead(let deadline) = state { deadline.cancel() }
        state = .inRequest
    }

    func requestEnded(context: ChannelHandlerContext) {
        if case .readingHead(let deadline) = state { deadline.cancel() }
        state = .awaitingHead
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .readingHead(let deadline) = state { deadline.cancel() }
        state = .inRequest
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if case .readingHead(let deadline) = state { deadline.cancel() }
    }
}

@available(*, unavailable)
extension RequestHeadDeadlineHandler: Sendable {}
