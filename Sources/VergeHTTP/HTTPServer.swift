import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import ServiceLifecycle
import VergeCore

/// The control plane's server: Hummingbird's router over SwiftNIO (hosts and the gateway use `HandlerServer`).
public enum HTTPServer {
    /// A routed application (the control plane's API).
    public static func application<Responder: HTTPResponder>(
        responder: Responder,
        bind: BindAddress,
        name: String,
        listenAddress: ListenAddress,
        limits: ListenerLimits = .default,
        tls: TLSSettings = TLSSettings(),
        logger: Logger
    ) throws -> some Service where Responder.Context == VergeRequestContext {
        let secure = tls.serves
        return Application(
            responder: responder,
            server: try serverBuilder(limits: limits, tls: tls, name: name, logger: logger),
            configuration: .init(address: .hostname(bind.host, port: bind.port), serverName: name),
            onServerRunning: { channel in
                if let address = channel.localAddress { listenAddress.set(address, secure: secure) }
            },
            logger: logger
        )
    }
}

extension HTTPServer {
    /// HTTP/1.1, inside TLS when the settings have a certificate.
    static func serverBuilder(
        limits: ListenerLimits, tls: TLSSettings, name: String, logger: Logger
    ) throws -> HTTPServerBuilder {
        let http1 = HTTPServerBuilder.http1(configuration: http1Configuration(limits, name: name, logger: logger))
        guard let configuration = try tls.serverConfiguration() else { return http1 }
        return try .tls(http1, tlsConfiguration: configuration)
    }

    /// HTTP/1.1 with the listener's limits: its connection cap, its idle timeout, a deadline for each request head,
    /// header limits well above what browsers send, well below what would let a client hog memory, and ambiguous
    /// framing refused before any handler sees it (`RequestFramingHandler`).
    static func http1Configuration(
        _ limits: ListenerLimits, name: String, logger: Logger
    ) -> HTTP1Channel.Configuration {
        var logger = logger
        logger[metadataKey: "listener"] = "\(name)"
        let limiter = ConnectionLimiter(limit: limits.maxConnections, logger: logger)
        let guardLogger = logger
        let headerTimeout = TimeAmount(limits.headerTimeout)
        return HTTP1Channel.Configuration(
            additionalChannelHandlers: [
                limiter.handler(), RequestGuardInstaller(headerTimeout: headerTimeout, logger: guardLogger),
            ],
            idleTimeout: TimeAmount(limits.idleTimeout),
            httpDecoderConfiguration: .init(
                maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 64 * 1024, maxHeaderFieldCount: 200)
        )
    }
}

/// The event loop group every server and client of the process shares.
public enum MultiThreadedEventLoopGroupProvider {
    public static var shared: any EventLoopGroup { NIOSingletons.posixEventLoopGroup }
}
