import VergeBundle
import VergeCore
import VergeHTTP

/// The control plane's settings, with documented defaults; every key is in the README's configuration table.
public struct ControlPlaneConfiguration: Sendable {
    /// Address of the HTTP API. Default `127.0.0.1:8787`.
    public var bind = BindAddress(host: "127.0.0.1", port: 8787)
    /// Directory for `control.sqlite` and `bundles/`.
    public var dataDirectory: String
    /// A host that has not synced for this long is reported unhealthy. Default 3 s.
    public var hostLivenessWindow: Duration = .seconds(3)
    /// The file holding the key that seals secrets at rest (created, mode 0600, when absent). Default
    /// `<data>/secret.key`. Keep it apart from backups of the database: the two together reveal every secret.
    public var secretKeyFile: String?
    /// The API listener's connection cap and idle timeout.
    public var listener: ListenerLimits = .default
    /// TLS for the API (certificate and key) and the CA trusted when calling hosts. Default: plain HTTP.
    public var tls = TLSSettings()
    /// Writes (POST, PUT, DELETE outside `/v1/internal/*`) allowed per API token. Default 10/s, bursts of 30.
    public var writeRateLimit = RateLimit(perSecond: 10, burst: 30)
    /// Limits applied to uploaded bundles.
    public var bundleLimits: BundleLimits = .default

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }
}
