import AsyncHTTPClient
import NIOCore

extension HTTPClient {
    /// The process-wide client for Verge's own calls (CLI → control plane, host → control plane, control plane →
    /// hosts). Unlike `HTTPClient.verge` it does not keep retrying a refused connection until the connect timeout:
    /// a peer that is down is reported at once and the caller decides (retry later, serve from cache, tell the user).
    public static let verge: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(3)),
            decompression: .disabled
        )
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroupProvider.shared, configuration: configuration)
    }()
}
