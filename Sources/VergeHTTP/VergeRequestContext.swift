import Hummingbird
import Logging
import NIOCore

/// The request context of every Verge HTTP server: Hummingbird's core storage plus the peer's socket address,
/// which the gateway needs to decide whether to trust forwarded location headers.
public struct VergeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The address of the TCP peer, as the socket reports it.
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// Request bodies decoded as JSON by the API are small; bundles are read by streaming, not decoding.
    public var maxUploadSize: Int { 4 * 1024 * 1024 }
}
