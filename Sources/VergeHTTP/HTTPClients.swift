import AsyncHTTPClient
import NIOCore
import NIOSSL
import Synchronization
import VergeCore

extension HTTPClient {
    /// The process-wide client for Verge's own calls (CLI → control plane, host → control plane, control plane →
    /// hosts). Unlike `HTTPClient.shared` it does not keep retrying a refused connection until the connect timeout:
    /// a peer that is down is reported at once and the caller decides (retry later, serve from cache, tell the user).
    /// It trusts the CA given to ``useVergeTrust(_:)`` before its first use, else the system's roots.
    public static let verge: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(3)),
            decompression: .disabled
        )
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.tlsConfiguration = VergeClientTrust.configuration.withLock { $0 }
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroupProvider.shared, configuration: configuration)
    }()

    /// Makes `HTTPClient.verge` trust the CA of `settings` (its `caFile`); call once at start-up, before any call.
    public static func useVergeTrust(_ settings: TLSSettings) throws(VergeError) {
        let configuration = try settings.clientConfiguration()
        VergeClientTrust.configuration.withLock { $0 = configuration }
    }
}

/// What `HTTPClient.verge` trusts, set at start-up.
enum VergeClientTrust {
    static let configuration = Mutex<TLSConfiguration?>(nil)
}
