import NIOCore
import VergeCore
import VergeHTTP

/// The gateway's settings, with documented defaults; every key is in the README's configuration table.
public struct GatewayConfiguration: Sendable {
    /// Address the gateway listens on. Default `127.0.0.1:8080`.
    public var bind = BindAddress(host: "127.0.0.1", port: 8080)
    /// Peers whose geo headers (`cloudfront-viewer-*`, `cf-ip*`) and `x-forwarded-for` are believed. Default: none.
    public var trustedProxies: [CIDR] = []
    /// A MaxMind DB file (`.mmdb`: GeoLite2-City, GeoIP2, DB-IP) that maps client addresses to places; reopened when
    /// the file changes. The gateway refuses to start when it is set and cannot be opened. Default: none, and then
    /// the country-level fallback from Debian's tor-geoipdb (when installed) locates clients.
    public var geoipDatabase: String?
    /// How often the GeoIP database file is checked for a change. Default 2 s.
    public var geoipReloadInterval: Duration = .seconds(2)
    /// The tor-geoipdb files of the country-level fallback. Default: where Debian installs them.
    public var countryFallbackFiles = (ipv4: TorGeoIPDatabase.debianIPv4, ipv6: TorGeoIPDatabase.debianIPv6)
    /// Where a client is assumed to be when nothing better is known.
    public var defaultLocation = GeoPoint(50.11, 8.68)
    /// The control plane the host list comes from.
    public var controlPlaneURL: String
    /// The gateway's own credential (`verge_gw_…`): presented to the control plane for the host list and to hosts
    /// on forwarded calls. Default: read from ``credentialFile``, or obtained with ``joinToken`` on first start.
    public var credential: String?
    /// Where the gateway keeps its credential (mode 0600). Default `.verge/gateway/credential`.
    public var credentialFile: String = ".verge/gateway/credential"
    /// A one-time join token (`verge join-tokens create --role gateway`), used when there is no credential yet.
    public var joinToken: String?
    /// Functions are reachable at `FUNCTION.TENANT.DOMAIN` (and the default tenant's also at `/FUNCTION`).
    /// Default `localhost`.
    public var domain: String = "localhost"
    /// How often the host list is refreshed from the control plane. Default 100 ms. A call whose nearest healthy host
    /// does not list its function also triggers a refresh, so a fresh deploy is routed to the nearest host at once.
    public var hostRefreshInterval: Duration = .milliseconds(100)
    /// How often each host's `/_verge/health` is checked. Default 1 s.
    public var healthCheckInterval: Duration = .seconds(1)
    /// Consecutive failed checks before a host is taken out of rotation. Default 2.
    public var unhealthyThreshold = 2
    /// Longest wait for a host's response head (time to first byte); then the call is answered `504`. Default
    /// 31 min: a call may queue for its function's timeout (at most 15 min) and then run for as long again.
    public var firstByteTimeout: Duration = .seconds(1860)
    /// Largest request body passed on; a larger one is answered `413` (at once when `Content-Length` says so).
    /// Default 6 MiB, the hosts' default.
    public var maxRequestBodyBytes = 6 * 1024 * 1024
    /// Bodies up to this size are read before the call is sent, so the call can move to another host when the
    /// first is saturated or unreachable; larger ones are streamed and sent to one host only. Default 64 KiB.
    public var replayBufferBytes = 64 * 1024
    /// Most hosts one call is tried on. Default 3.
    public var maxAttempts = 3
    /// How long an ejected host stays out before a successful check brings it back: 1 s, doubled per ejection in
    /// a row, at most 30 s.
    public var ejectionBackoff = HostHealthStateMachine.Backoff(initial: .seconds(1), maximum: .seconds(30))
    /// Time allowed to connect to a host. Default 2 s.
    public var connectTimeout: Duration = .seconds(2)
    /// The listener's connection cap and idle timeout.
    public var listener: ListenerLimits = .default
    /// TLS for the listener (certificate and key) and the CA trusted when calling hosts and the control plane.
    public var tls = TLSSettings()
    /// Threads (event loops) serving client connections and their host connections; each connection stays on one.
    /// Default: one fewer than the machine's cores, at least one — the kernel's network work for every proxied byte
    /// needs a core too, and on a 2-core machine a second event loop cost about 30 % more CPU per call
    /// (`Samples/bench/gateway.sh`: shared state bouncing between cores, more wake-ups) without more throughput.
    public var eventLoops = max(1, System.coreCount - 1)

    public init(controlPlaneURL: String) {
        self.controlPlaneURL = controlPlaneURL
    }
}
