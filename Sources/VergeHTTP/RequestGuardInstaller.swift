import Logging
import NIOCore
import NIOHTTP1

/// Added with the listener's other handlers (after the HTTP/1 codec); puts `RequestHeadDeadlineHandler` and
/// `RequestFramingHandler` around the HTTP/1 decoder, where they see raw bytes and parsed parts, then leaves.
/// Fails closed: a pipeline without the decoder where it is expected is closed rather than served unguarded.
final class RequestGuardInstaller: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let headerTimeout: TimeAmount
    private let logger: Logger

    init(headerTimeout: TimeAmount, logger: Logger) {
        self.headerTimeout = headerTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        do {
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let deadline = RequestHeadDeadlineHandler(timeout: headerTimeout, logger: logger)
            try pipeline.addHandler(deadline, position: .before(decoder))
            try pipeline.addHandler(RequestFramingHandler(deadline: deadline), position: .after(decoder))
        } catch {
            logger.error(
                "connection closed: the request guards could not be installed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        pipeline.removeHandler(context: context, promise: nil)
    }
}

@available(*, unavailable)
extension RequestGuardInstaller: Sendable {}
