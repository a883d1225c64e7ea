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

    private var deadline: LazyDeadline?
    /// A head is being read (its first byte arrived, the parser has not produced it yet).
    private var readingHead = false
    /// Between a parsed head and the request's end: bytes arriving belong to its body.
    private var inRequest = false
    private let timeout: TimeAmount
    private let logger: Logger

    init(timeout: TimeAmount, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let logger = self.logger
        let timeout = self.timeout
        // The deadline is set and cleared per request; one task is scheduled at a time (see `LazyDeadline`).
        deadline = LazyDeadline(eventLoop: context.eventLoop) { [weak channel] in
            logger.info(
                "connection closed: request head not complete in time",
                metadata: ["timeout.ms": "\(timeout.nanoseconds / 1_000_000)"])
            channel?.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !readingHead, !inRequest, unwrapInboundIn(data).readableBytes > 0 {
            readingHead = true
            deadline?.arm(in: timeout)
        }
        context.fireChannelRead(data)
    }

    func headReceived(context: ChannelHandlerContext) {
        deadline?.disarm()
        readingHead = false
        inRequest = true
    }

    func requestEnded(context: ChannelHandlerContext) {
        deadline?.disarm()
        readingHead = false
        inRequest = false
    }

    /// No further request head will be read on this connection (it was rejected, or its last request ended): bytes
    /// that still arrive do not start a deadline that would cut the responses still going out.
    func stop() {
        deadline?.cancel()
        readingHead = false
        inRequest = true
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        readingHead = false
        inRequest = true
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}

@available(*, unavailable)
extension RequestHeadDeadlineHandler: Sendable {}
