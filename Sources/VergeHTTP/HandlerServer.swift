import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import VergeCore

/// A listener whose connections are driven by channel handlers instead of an async responder (a host's connections,
/// the gateway's proxy: no hop between threads per request part). It has what every Verge listener has: the
/// connection cap, the request guards (`RequestFramingHandler`, `RequestHeadDeadlineHandler`), HTTP/1.1 (without
/// NIO's pipelining assistance, which costs two `epoll_ctl` calls per request: the handlers answer pipelined
/// requests in order themselves), a
/// `ConnectionIdleHandler` firing `IdleStateHandler.IdleStateEvent.all` after `idleTimeout` without reads or
/// flushes (the handlers close a connection that has no request in progress),
/// TLS when configured, and graceful shutdown (the handlers get `ChannelShouldQuiesceEvent`: idle connections
/// close, busy ones after their response). Connections are served on `eventLoopGroup`'s event loops (the process's
/// shared group unless the caller gives its own).
public enum HandlerServer {
    public static func make(
        bind: BindAddress,
        name: String,
        listenAddress: ListenAddress,
        limits: ListenerLimits,
        tls: TLSSettings,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroupProvider.shared,
        handlers: @escaping @Sendable (any Channel) throws -> [any ChannelHandler]
    ) throws -> any Service {
        var logger = logger
        logger[metadataKey: "listener"] = "\(name)"
        let child = HandlerChildChannel(
            limiter: ConnectionLimiter(limit: limits.maxConnections, logger: logger), limits: limits,
            logger: logger, handlers: handlers)
        let secure = tls.serves
        let configuration = ServerConfiguration(address: .hostname(bind.host, port: bind.port), serverName: name)
        let onRunning: @Sendable (any Channel) async -> Void = { channel in
            if let address = channel.localAddress { listenAddress.set(address, secure: secure) }
        }
        if let tlsConfiguration = try tls.serverConfiguration() {
            return try TLSChannel(child, tlsConfiguration: tlsConfiguration).server(
                configuration: configuration, onServerRunning: onRunning,
                eventLoopGroup: eventLoopGroup, logger: logger)
        }
        return child.server(
            configuration: configuration, onServerRunning: onRunning,
            eventLoopGroup: eventLoopGroup, logger: logger)
    }
}

struct HandlerChildChannel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let limiter: ConnectionLimiter
    let limits: ListenerLimits
    let logger: Logger
    let handlers: @Sendable (any Channel) throws -> [any ChannelHandler]

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(limiter.handler())
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderFieldSize = 16 * 1024
            decoderLimits.maxHeaderListSize = 64 * 1024
            decoderLimits.maxHeaderFieldCount = 200
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: true,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: decoderLimits)
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let deadline = RequestHeadDeadlineHandler(timeout: TimeAmount(limits.headerTimeout), logger: self.logger)
            try pipeline.addHandler(deadline, position: .before(decoder))
            try pipeline.addHandler(RequestFramingHandler(deadline: deadline), position: .after(decoder))
            try pipeline.addHandler(ConnectionIdleHandler(timeout: TimeAmount(limits.idleTimeout)))
            try pipeline.addHandlers(try handlers(channel))
            return Value(channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        try? await value.channel.closeFuture.get()
    }
}
