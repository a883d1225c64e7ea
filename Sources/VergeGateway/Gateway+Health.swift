/// What `GET /_verge/health` on the gateway answers: that it runs, how it locates clients, and how many hosts it
/// knows and can route to.
public struct GatewayHealth: Codable, Sendable, Equatable {
    public var status: String
    /// `maxmind`, `tor-geoipdb` or `none` (the default location only).
    public var locator: GeoIPService.Kind
    /// The locator in words, as the start-up log says it.
    public var locatorDetail: String
    /// Whether the locator answers yet (the tor-geoipdb fallback loads in the background after start-up).
    public var locatorReady: Bool
    public var geoipDatabase: String?
    public var geoipReloads: Int
    public var hosts: Int
    /// Hosts calls may go to: healthy, and holding this gateway's proof.
    public var healthyHosts: Int

    enum CodingKeys: String, CodingKey {
        case status, locator, hosts
        case locatorDetail = "locator_detail"
        case locatorReady = "locator_ready"
        case geoipDatabase = "geoip_database"
        case geoipReloads = "geoip_reloads"
        case healthyHosts = "healthy_hosts"
    }
}

extension Gateway {
    public var health: GatewayHealth {
        let hosts = directory.snapshot
        return GatewayHealth(
            status: "ok", locator: geoIP.kind, locatorDetail: geoIP.summary, locatorReady: geoIP.isReady,
            geoipDatabase: geoIP.databasePath,
            geoipReloads: geoIP.reloads, hosts: hosts.count, healthyHosts: hosts.filter(\.isRoutable).count)
    }
}
