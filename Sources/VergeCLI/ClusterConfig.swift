import Foundation
import VergeCore
import VergeGateway
import VergeHTTP
import VergeHost

/// The local cluster's configuration file (`Samples/cluster/local.json`). Every key is optional; the defaults
/// are the three-host cluster below. Unknown keys are rejected so a typo never goes unnoticed.
struct ClusterConfig: Decodable, Sendable {
    struct Host: Decodable, Sendable {
        var name: String
        var location: GeoPoint
        /// Written into the host's usage records; optional.
        var region: String?

        init(name: String, location: GeoPoint, region: String? = nil) {
            self.name = name
            self.location = location
            self.region = region
        }
    }

    var gateway: BindAddress = BindAddress(host: "127.0.0.1", port: 8080)
    var api: BindAddress = BindAddress(host: "127.0.0.1", port: 8787)
    var hosts: [Host] = [
        Host(name: "fra", location: GeoPoint(50.11, 8.68)),
        Host(name: "iad", location: GeoPoint(39.04, -77.49)),
        Host(name: "sin", location: GeoPoint(1.35, 103.82)),
    ]
    var trustedProxies: [String] = ["127.0.0.0/8", "::1/128"]
    var defaultLocation: GeoPoint = GeoPoint(50.11, 8.68)
    /// A MaxMind DB (`.mmdb`) that locates clients by address; relative paths are taken from the current directory.
    var geoipDatabase: String?
    var idleTimeoutSeconds: Double = 300
    /// How long a new worker may take to say it is ready; then its start fails (`init_failed`).
    var initTimeoutSeconds: Double = 10
    var python: String = ""
    var syncIntervalMs: Int = 250
    /// `sandbox` (default) or `none`; `none` runs functions unsandboxed and every status surface says so.
    var isolation: IsolationLevel = .sandbox
    /// Host capacity, per host; `nil` takes the machine-derived defaults of `HostConfiguration`.
    var maxWorkers: Int?
    var maxMemoryMB: Int?
    var maxQueuedCalls: Int?
    var hostEventLoops: Int?

    /// Functions are reachable through the gateway at `FUNCTION.TENANT.DOMAIN`.
    var domain: String = "localhost"


    var maxConnections: Int = ListenerLimits.default.maxConnections
    var connectionIdleTimeoutSeconds: Double = 60
    var headerTimeoutSeconds: Double = 10
    var writeRatePerSecond: Double = 10
    var writeBurst: Int = 30
    var tlsCertificate: String?
    var tlsKey: String?
    var tlsCA: String?

    /// TLS for every listener of the cluster and the CA its components trust for one another.
    var tls: TLSSettings {
        TLSSettings(
            certificateFile: tlsCertificate.map(RuntimeLocator.absolute), keyFile: tlsKey.map(RuntimeLocator.absolute),
            caFile: tlsCA.map(RuntimeLocator.absolute))
    }

    /// The connection cap, idle timeout and request-head deadline every listener of the cluster gets.
    var listener: ListenerLimits {
        ListenerLimits(
            maxConnections: maxConnections, idleTimeout: .milliseconds(Int64(connectionIdleTimeoutSeconds * 1000)),
            headerTimeout: .milliseconds(Int64(headerTimeoutSeconds * 1000)))
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case gateway, api, hosts, python, isolation, domain
        case maxConnections = "max_connections"
        case connectionIdleTimeoutSeconds = "connection_idle_timeout_s"
        case headerTimeoutSeconds = "header_timeout_s"
        case writeRatePerSecond = "write_rate_per_s"
        case writeBurst = "write_burst"
        case tlsCertificate = "tls_cert"
        case tlsKey = "tls_key"
        case tlsCA = "tls_ca"
        case trustedProxies = "trusted_proxies"
        case defaultLocation = "default_location"
        case geoipDatabase = "geoip_database"
        case idleTimeoutSeconds = "idle_timeout_s"
        case initTimeoutSeconds = "init_timeout_s"
        case syncIntervalMs = "sync_interval_ms"
        case maxWorkers = "max_workers"
        case maxMemoryMB = "max_memory_mb"
        case maxQueuedCalls = "max_queued_calls"
        case hostEventLoops = "host_event_loops"
    }

    init() {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        let all = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
        if let unknown = all.first(where: { !known.contains($0) }) {
            throw VergeCLIError("unknown key '\(unknown)' (known keys: \(known.sorted().joined(separator: ", ")))")
        }
        let defaults = ClusterConfig()
        gateway = try container.decodeIfPresent(BindAddress.self, forKey: .gateway) ?? defaults.gateway
        api = try container.decodeIfPresent(BindAddress.self, forKey: .api) ?? defaults.api
        hosts = try container.decodeIfPresent([Host].self, forKey: .hosts) ?? defaults.hosts
        trustedProxies =
            try container.decodeIfPresent([String].self, forKey: .trustedProxies) ?? defaults.trustedProxies
        defaultLocation =
            try container.decodeIfPresent(GeoPoint.self, forKey: .defaultLocation) ?? defaults.defaultLocation
        geoipDatabase = try container.decodeIfPresent(String.self, forKey: .geoipDatabase)
        idleTimeoutSeconds =
            try container.decodeIfPresent(Double.self, forKey: .idleTimeoutSeconds) ?? defaults.idleTimeoutSeconds
        initTimeoutSeconds =
            try container.decodeIfPresent(Double.self, forKey: .initTimeoutSeconds) ?? defaults.initTimeoutSeconds
        python = try container.decodeIfPresent(String.self, forKey: .python) ?? defaults.python
        syncIntervalMs = try container.decodeIfPresent(Int.self, forKey: .syncIntervalMs) ?? defaults.syncIntervalMs
        isolation = try container.decodeIfPresent(IsolationLevel.self, forKey: .isolation) ?? defaults.isolation
        maxWorkers = try container.decodeIfPresent(Int.self, forKey: .maxWorkers)
        maxMemoryMB = try container.decodeIfPresent(Int.self, forKey: .maxMemoryMB)
        maxQueuedCalls = try container.decodeIfPresent(Int.self, forKey: .maxQueuedCalls)
        hostEventLoops = try container.decodeIfPresent(Int.self, forKey: .hostEventLoops)
        domain = try container.decodeIfPresent(String.self, forKey: .domain) ?? defaults.domain
        maxConnections = try container.decodeIfPresent(Int.self, forKey: .maxConnections) ?? defaults.maxConnections
        connectionIdleTimeoutSeconds =
            try container.decodeIfPresent(Double.self, forKey: .connectionIdleTimeoutSeconds)
            ?? defaults.connectionIdleTimeoutSeconds
        headerTimeoutSeconds =
            try container.decodeIfPresent(Double.self, forKey: .headerTimeoutSeconds) ?? defaults.headerTimeoutSeconds
        writeRatePerSecond =
            try container.decodeIfPresent(Double.self, forKey: .writeRatePerSecond) ?? defaults.writeRatePerSecond
        writeBurst = try container.decodeIfPresent(Int.self, forKey: .writeBurst) ?? defaults.writeBurst
        tlsCertificate = try container.decodeIfPresent(String.self, forKey: .tlsCertificate)
        tlsKey = try container.decodeIfPresent(String.self, forKey: .tlsKey)
        tlsCA = try container.decodeIfPresent(String.self, forKey: .tlsCA)
        try validate()
    }

    func validate() throws {
        guard !hosts.isEmpty else { throw VergeCLIError("'hosts' must name at least one host") }
        var names = Set<String>()
        for host in hosts {
            guard HostName.isValid(host.name) else {
                throw VergeCLIError("host name '\(host.name)' is invalid (a-z, 0-9, '-')")
            }
            guard names.insert(host.name).inserted else {
                throw VergeCLIError("host name '\(host.name)' appears twice")
            }
            if let region = host.region, region.isEmpty || !HostName.isValid(region) {
                throw VergeCLIError("region '\(region.prefix(64))' of host '\(host.name)' is invalid (a-z, 0-9, '-')")
            }
        }
        for proxy in trustedProxies where CIDR(proxy) == nil {
            throw VergeCLIError("trusted_proxies: '\(proxy)' is not an address or CIDR network")
        }
        guard idleTimeoutSeconds > 0, idleTimeoutSeconds <= 86_400 else {
            throw VergeCLIError("idle_timeout_s must be between 0 and 86400")
        }
        guard initTimeoutSeconds >= 0.1, initTimeoutSeconds <= 600 else {
            throw VergeCLIError("init_timeout_s must be between 0.1 and 600")
        }
        guard (10...60_000).contains(syncIntervalMs) else {
            throw VergeCLIError("sync_interval_ms must be between 10 and 60000")
        }
        guard maxConnections >= 1 else { throw VergeCLIError("max_connections must be at least 1") }
        guard connectionIdleTimeoutSeconds > 0, connectionIdleTimeoutSeconds <= 3600 else {
            throw VergeCLIError("connection_idle_timeout_s must be between 0 and 3600")
        }
        guard headerTimeoutSeconds > 0, headerTimeoutSeconds <= 600 else {
            throw VergeCLIError("header_timeout_s must be between 0 and 600")
        }
        guard writeRatePerSecond > 0, writeBurst >= 1 else {
            throw VergeCLIError("write_rate_per_s must be above 0 and write_burst at least 1")
        }
        do { try tls.validate() } catch { throw VergeCLIError("tls_cert/tls_key/tls_ca: \(error.message)") }
        var host = HostConfiguration(name: "check", location: GeoPoint(0, 0), dataDirectory: "", runtimeDirectory: "")
        applyCapacity(to: &host)
        do { try host.validateCapacity() } catch { throw VergeCLIError(error.message) }
    }

    /// Sets the capacity keys that are present on a host's configuration.
    func applyCapacity(to configuration: inout HostConfiguration) {
        if let maxWorkers { configuration.maxWorkers = maxWorkers }
        if let maxMemoryMB { configuration.maxMemoryMB = maxMemoryMB }
        if let maxQueuedCalls { configuration.maxQueuedCalls = maxQueuedCalls }
        if let hostEventLoops { configuration.eventLoops = hostEventLoops }
    }

    /// Loads a config file; errors name the file and what is wrong.
    static func load(path: String) throws -> ClusterConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VergeCLIError("cannot read config file \(path)")
        }
        do {
            return try JSONDecoder().decode(ClusterConfig.self, from: data)
        } catch let error as VergeCLIError {
            throw VergeCLIError("\(path): \(error)")
        } catch let error as DecodingError {
            throw VergeCLIError("\(path): \(JSONCoding.describe(error))")
        }
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
