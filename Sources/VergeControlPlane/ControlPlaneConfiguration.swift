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
    /// Limits applied to uploaded bundles.
    public var bundleLimits: BundleLimits = .default

    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }
}
