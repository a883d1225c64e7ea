import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import ServiceLifecycle
import VergeCore

/// The servers of Verge, all on Hummingbird over SwiftNIO.
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

    /// A server that drives the response itself (the host and the gateway): it writes the head, streams the body
    /// and decides what happens when the client goes away, so no invocation is left unaccounted.
    public typealias StreamingResponder =
        @Sendable (Request, consuming ResponseWriter, any Channel) async throws -> Void

    public static func streaming(
        bind: BindAddress,
        name: String,
        listenAddress: ListenAddress,
        limits: ListenerLimits = .default,
        tls: TLSSettings = TLSSettings(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroupProvider.shared,
        logger: Logger,
        responder: @escaping StreamingResponder
    ) throws -> any Service {
        let secure = tls.serves
        return try streamingBuilder(limits: limits, tls: tls, name: name, logger: logger).buildServer(
            configuration: .init(address: .hostname(bind.host, port: bind.port), serverName: name),
            eventLoopGroup: eventLoopGroup,
            logger: logger,
            responder: responder,
            onServerRunning: { channel in
                if let address = channel.localAddress { listenAddress.set(address, secure: secure) }
            }
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

    /// HTTP/1.1 (inside TLS when the settings have a certificate), each connection's handler on its own event loop
    /// (``EventLoopAffineChannel``).
    static func streamingBuilder(
        limits: ListenerLimits, tls: TLSSettings, name: String, logger: Logger
    ) throws -> HTTPServerBuilder {
        let configuration = http1Configuration(limits, name: name, logger: logger)
        let tlsConfiguration = try tls.serverConfiguration()
        return HTTPServerBuilder { responder in
            let http1 = HTTP1Channel(responder: responder, configuration: configuration)
            guard let tlsConfiguration else { return EventLoopAffineChannel(base: http1) }
            return EventLoopAffineChannel(base: try TLSChannel(http1, tlsConfiguration: tlsConfiguration))
        }
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

extension ResponseWriter {
    /// Writes a whole response with a JSON error body.
    public consuming func writeError(_ error: VergeError, headers: HTTPFields = [:]) async throws {
        let response = Response.error(error, headers: headers)
        try await write(response: response.head, body: response.body)
    }

    /// Writes a whole JSON response.
    public consuming func writeJSON(_ value: some Encodable, status: HTTPResponse.Status = .ok) async throws {
        let response = try Response.json(value, status: status)
        try await write(response: response.head, body: response.body)
    }
}
