import Foundation
import VergeCore
import VergeHTTP

/// Everything one edge host needs to know, with documented defaults. Loaded by `verge dev` from the cluster
/// config; every key is listed in the README's configuration table.
public struct HostConfiguration: Sendable {
    /// Short name shown in `x-verge-host` and `verge hosts`, e.g. `fra`.
    public var name: String
    /// Where the host is; the gateway routes clients to the nearest healthy host.
    public var location: GeoPoint
    /// Address the host's HTTP server binds. Default `127.0.0.1:0` (any free port).
    public var bind: BindAddress = BindAddress(host: "127.0.0.1", port: 0)
    /// The host's own directory: `host.sqlite` (usage and logs), `bundles/` (cached bundles), `deployments.json`.
    public var dataDirectory: String
    /// Directory holding the in-worker runtimes (`python/verge_worker.py`).
    public var runtimeDirectory: String
    /// The Python interpreter that runs Python functions. Default `/usr/bin/python3` when present.
    public var python: String = HostConfiguration.defaultPython
    /// How long an idle worker is kept before it is stopped (a function's manifest may override). Default 300 s.
    public var idleTimeout: Duration = .seconds(300)
    /// How long a worker may take from spawn to `ready`. Default 10 s.
    public var initTimeout: Duration = .seconds(10)
    /// How long a stopping worker gets between SIGTERM and SIGKILL. Default 2 s.
    public var stopGracePeriod: Duration = .seconds(2)
    /// Largest request body a function accepts. Default 6 MiB.
    public var maxRequestBodyBytes: Int = 6 * 1024 * 1024
    /// The control plane to sync with; `nil` runs the host from its cache only.
    public var controlPlaneURL: String?
    /// How often the host reports its status and pulls the desired state. Default 250 ms.
    public var syncInterval: Duration = .milliseconds(250)
    /// How long function logs, and usage records the control plane has acknowledged, stay on the host. Default 24 h.
    public var retention: Duration = .seconds(86_400)
    /// How often usage records are shipped to the control plane when there is nothing new to wake it. Default 1 s.
    public var shipInterval: Duration = .seconds(1)
    /// The cluster's shared secret: required from the gateway for `x-verge-client-*` headers to be trusted and for
    /// `/_verge/status` and `/_verge/logs`; presented to the control plane on sync and usage shipping.
    public var clusterKey: String?
    /// The HTTP listener's connection cap and idle timeout.
    public var listener: ListenerLimits = .default
    /// TLS for the listener (certificate and key) and the CA trusted when calling the control plane.
    public var tls = TLSSettings()

    public init(name: String, location: GeoPoint, dataDirectory: String, runtimeDirectory: String) {
        self.name = name
        self.location = location
        self.dataDirectory = dataDirectory
        self.runtimeDirectory = runtimeDirectory
    }

    public static let defaultPython: String =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
}
