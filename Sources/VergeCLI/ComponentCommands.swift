import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import VergeControlPlane
import VergeCore
import VergeGateway
import VergeHTTP
import VergeHost
import VergeSupervisor

/// Options every standalone component shares.
struct ComponentOptions: ParsableArguments {
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    @Flag(name: .customLong("stop-on-stdin-eof"), help: "Shut down when standard input closes.")
    var stopOnStdinEOF = false

    @Option(name: .customLong("max-connections"), help: "Most open connections on the listener (default 1024).")
    var maxConnections: Int = ListenerLimits.default.maxConnections

    @Option(
        name: .customLong("connection-idle-timeout"),
        help: "Seconds a connection without a request in progress stays open (default 60).")
    var connectionIdleTimeout: Double = 60

    @Option(
        name: .customLong("header-timeout"),
        help: "Seconds a request head may take to arrive once its first byte has (slowloris; default 10).")
    var headerTimeout: Double = 10

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain to serve TLS with (needs --tls-key).")
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(
        name: .customLong("tls-ca"),
        help: "PEM CA certificates trusted when calling the cluster's other components (or set VERGE_TLS_CA).")
    var tlsCA: String? = ProcessInfo.processInfo.environment["VERGE_TLS_CA"]

    /// The TLS settings, checked (every file loads), and `HTTPClient.verge` set to trust the CA.
    func tls() throws -> TLSSettings {
        let settings = TLSSettings(
            certificateFile: tlsCertificate.map(RuntimeLocator.absolute), keyFile: tlsKey.map(RuntimeLocator.absolute),
            caFile: tlsCA.map(RuntimeLocator.absolute))
        do {
            try settings.validate()
            try HTTPClient.useVergeTrust(settings)
        } catch {
            throw ValidationError(error.message)
        }
        return settings
    }

    func listener() throws -> ListenerLimits {
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard connectionIdleTimeout > 0, connectionIdleTimeout <= 3600 else {
            throw ValidationError("--connection-idle-timeout must be between 0 and 3600 seconds")
        }
        guard headerTimeout > 0, headerTimeout <= 600 else {
            throw ValidationError("--header-timeout must be between 0 and 600 seconds")
        }
        return ListenerLimits(
            maxConnections: maxConnections, idleTimeout: .milliseconds(Int64(connectionIdleTimeout * 1000)),
            headerTimeout: .milliseconds(Int64(headerTimeout * 1000)))
    }

    func address(_ text: String, _ flag: String) throws -> BindAddress {
        guard let address = BindAddress(text) else {
            throw ValidationError("--\(flag): expected HOST:PORT, got '\(text)'")
        }
        return address
    }

    func point(_ text: String, _ flag: String) throws -> GeoPoint {
        let parts = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let latitude = parts[0], let longitude = parts[1],
            let point = GeoPoint(latitude: latitude, longitude: longitude)
        else { throw ValidationError("--\(flag): expected LATITUDE,LONGITUDE, got '\(text)'") }
        return point
    }
}

/// Runs `services` in one group (started in order, stopped in reverse on SIGTERM or SIGINT, or at end of standard
/// input when asked), printing `ready …` with what `announce` returns once it returns.
func runServices(
    _ services: [any Service], stopOnStdinEOF: Bool, logger: Logger, announce: @escaping @Sendable () async -> String
) async throws {
    var configurations = services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
    configurations.append(.init(service: Announcer(announce: announce)))
    if stopOnStdinEOF {
        configurations.append(.init(service: StdinWatcher(), successTerminationBehavior: .gracefullyShutdownGroup))
    }
    let group = ServiceGroup(
        configuration: .init(services: configurations, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    )
    try await group.run()
}

/// Prints the ready line, then waits for shutdown.
private struct Announcer: Service {
    let announce: @Sendable () async -> String

    func run() async throws {
        let line = await announce()
        // A component that failed before it listened cancels this: no ready line then.
        guard !Task.isCancelled else { return }
        Output.line("ready " + line)
        try? await gracefulShutdown()
    }
}

/// `verge control-plane`: the control plane alone, for clusters spread over several machines.
struct ControlPlaneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control-plane", abstract: "Run the control plane alone (API, bundle store, usage)."
    )
    @Option(help: "API address HOST:PORT.") var api: String = "127.0.0.1:8787"
    @Option(help: "Data directory.") var data: String = ".verge/control"
    @Option(
        name: .customLong("secret-key-file"),
        help: "Key that seals secrets at rest (created 0600 when absent). Default: DATA/secret.key.")
    var secretKeyFile: String?
    @Option(name: .customLong("write-rate"), help: "API writes allowed per second per token (default 10).")
    var writeRate: Double = 10
    @Option(name: .customLong("write-burst"), help: "API writes one token may make at once (default 30).")
    var writeBurst: Int = 30
    @OptionGroup var options: ComponentOptions

    func run() async throws {
        let (logger, registry) = ProcessBootstrap.start(logLevel: options.logLevel)
        var configuration = ControlPlaneConfiguration(dataDirectory: RuntimeLocator.absolute(data))
        configuration.bind = try options.address(api, "api")
        configuration.secretKeyFile = secretKeyFile.map(RuntimeLocator.absolute)
        configuration.listener = try options.listener()
        configuration.tls = try options.tls()
        guard writeRate > 0, writeBurst >= 1 else {
            throw ValidationError("--write-rate must be above 0 and --write-burst at least 1")
        }
        configuration.writeRateLimit = RateLimit(perSecond: writeRate, burst: writeBurst)
        let controlPlane = try ControlPlane(
            configuration: configuration, logger: logger, metricsText: { registry.emitToString() })
        if controlPlane.createdAdminToken {
            logger.notice(
                "first start: created the 'default' tenant and an admin token in \(controlPlane.adminTokenPath) (mode 0600); use it with VERGE_TOKEN, then keep it somewhere safe"
            )
        }
        try await runServices([controlPlane], stopOnStdinEOF: options.stopOnStdinEOF, logger: logger) {
            "api=\(await controlPlane.listenAddress.url())"
        }
    }
}

/// `verge host`: one edge host, syncing with a control plane and serving from its cache when it cannot.
struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "host", abstract: "Run one edge host.")
    @Option(help: "Host name (a-z, 0-9, '-').") var name: String
    @Option(help: "Location LATITUDE,LONGITUDE.") var location: String
    @Option(help: "Region written into usage records (a-z, 0-9, '-'), e.g. eu-central.") var region: String = ""
    @Option(name: .customLong("control-plane"), help: "The control plane's URL.") var controlPlane: String
    @Option(help: "Listen address HOST:PORT.") var bind: String = "127.0.0.1:0"
    @Option(help: "Data directory.") var data: String?
    @Option(name: .customLong("idle-timeout"), help: "Seconds an idle worker is kept.") var idleTimeout: Double = 300
    @Option(name: .customLong("init-timeout"), help: "Seconds a new worker may take to become ready.")
    var initTimeout: Double = 10
    @Option(help: "Python interpreter for Python functions.") var python: String?
    @Option(name: .customLong("runtime-dir"), help: "Directory of the in-worker runtimes.") var runtimeDirectory:
        String?
    @Option(help: "sandbox (default; refuse to start without one) or none (functions run unsandboxed).")
    var isolation: IsolationLevel = .sandbox
    @Option(name: .customLong("max-workers"), help: "Most worker processes, over all functions.") var maxWorkers: Int?
    @Option(name: .customLong("max-memory-mb"), help: "Most memory (MiB of memory_mb) of all workers together.")
    var maxMemoryMB: Int?
    @Option(name: .customLong("max-queued-calls"), help: "Most calls of one function waiting for a worker.")
    var maxQueuedCalls: Int?
    @Option(
        name: .customLong("event-loops"),
        help: "Threads that carry calls (connections and workers' sockets). Default: one per four cores, at least one.")
    var eventLoops: Int?
    @Option(
        name: .customLong("advertise-url"),
        help: "URL the gateway and control plane reach this host at. Default: the listen address (not 0.0.0.0).")
    var advertiseURL: String?
    @Option(
        name: .customLong("join-token-file"),
        help: "File holding a one-time join token (or set VERGE_JOIN_TOKEN); needed until the host has joined.")
    var joinTokenFile: String?
    @OptionGroup var options: ComponentOptions

    func run() async throws {
        guard HostName.isValid(name) else { throw ValidationError("--name: '\(name)' is not a valid host name") }
        guard idleTimeout > 0, idleTimeout <= 86_400 else {
            throw ValidationError("--idle-timeout must be between 0 and 86400 seconds")
        }
        guard initTimeout >= 0.1, initTimeout <= 600 else {
            throw ValidationError("--init-timeout must be between 0.1 and 600 seconds")
        }
        let runtime = try RuntimeLocator.locate(explicit: runtimeDirectory)
        let (logger, _) = ProcessBootstrap.start(logLevel: options.logLevel)
        var configuration = HostConfiguration(
            name: name, location: try options.point(location, "location"),
            dataDirectory: RuntimeLocator.absolute(data ?? ".verge/hosts/\(name)"), runtimeDirectory: runtime
        )
        configuration.bind = try options.address(bind, "bind")
        guard region.utf8.count <= 64, region.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 45 })
        else { throw ValidationError("--region: '\(region.prefix(64))' must be up to 64 of a-z, 0-9 and '-'") }
        configuration.region = region
        configuration.controlPlaneURL = controlPlane
        configuration.advertiseURL = advertiseURL
        configuration.joinToken = try ClusterJoin.secret(file: joinTokenFile, variable: "VERGE_JOIN_TOKEN")
        configuration.listener = try options.listener()
        configuration.tls = try options.tls()
        configuration.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
        configuration.initTimeout = .milliseconds(Int64(initTimeout * 1000))
        if let python { configuration.python = python }
        configuration.isolationSettings.level = isolation
        if let maxWorkers { configuration.maxWorkers = maxWorkers }
        if let maxMemoryMB { configuration.maxMemoryMB = maxMemoryMB }
        if let maxQueuedCalls { configuration.maxQueuedCalls = maxQueuedCalls }
        if let eventLoops { configuration.eventLoops = eventLoops }
        do { try configuration.validateCapacity() } catch { throw ValidationError(error.message) }
        let loop = try SupervisorLoop()
        defer { loop.shutdown() }
        let host = try EdgeHost(
            configuration: configuration, supervisor: Supervisor(loop: loop, logger: logger), logger: logger)
        try await runServices([host], stopOnStdinEOF: options.stopOnStdinEOF, logger: logger) {
            "host=\(await host.listenAddress.url())"
        }
    }
}

/// `verge gateway`: the gateway alone, routing to the hosts its control plane knows.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gateway", abstract: "Run the gateway alone.")
    @Option(help: "Listen address HOST:PORT.") var bind: String = "127.0.0.1:8080"
    @Option(name: .customLong("control-plane"), help: "The control plane's URL.") var controlPlane: String
    @Option(name: .customLong("trusted-proxy"), help: "A peer (CIDR) whose geo headers are believed; repeatable.")
    var trustedProxies: [String] = []
    @Option(name: .customLong("default-location"), help: "LATITUDE,LONGITUDE assumed for unknown clients.")
    var defaultLocation: String = "50.11,8.68"
    @Option(help: "Functions are reachable at FUNCTION.TENANT.DOMAIN.") var domain: String = "localhost"
    @Option(
        name: .customLong("geoip"),
        help: """
            MaxMind DB file (.mmdb) that locates clients by address; reloaded when it changes. \
            Default: the country-level fallback from tor-geoipdb.
            """)
    var geoip: String?
    @Option(name: .customLong("credential-file"), help: "Where the gateway keeps its credential (mode 0600).")
    var credentialFile: String = ".verge/gateway/credential"
    @Option(
        name: .customLong("join-token-file"),
        help: "File holding a one-time join token (or set VERGE_JOIN_TOKEN); needed until the gateway has joined.")
    var joinTokenFile: String?
    @Option(
        name: .customLong("event-loops"),
        help: "Event loop threads of the gateway (default: one fewer than the machine's cores, at least one).")
    var eventLoops: Int = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)

    @OptionGroup var options: ComponentOptions

    func run() async throws {
        let proxies = try trustedProxies.map { text in
            guard let cidr = CIDR(text) else {
                throw ValidationError("--trusted-proxy: '\(text)' is not an address or CIDR")
            }
            return cidr
        }
        let (logger, _) = ProcessBootstrap.start(logLevel: options.logLevel)
        var configuration = GatewayConfiguration(controlPlaneURL: controlPlane)
        configuration.bind = try options.address(bind, "bind")
        configuration.trustedProxies = proxies
        configuration.defaultLocation = try options.point(defaultLocation, "default-location")
        configuration.domain = domain
        configuration.geoipDatabase = geoip.map(RuntimeLocator.absolute)
        configuration.credentialFile = RuntimeLocator.absolute(credentialFile)
        configuration.joinToken = try ClusterJoin.secret(file: joinTokenFile, variable: "VERGE_JOIN_TOKEN")
        if configuration.joinToken == nil, try SecretFile.read(configuration.credentialFile) == nil {
            throw ValidationError(
                "the gateway has no credential (\(configuration.credentialFile)): create a join token with `verge join-tokens create --role gateway` and pass it with --join-token-file or VERGE_JOIN_TOKEN"
            )
        }
        guard (1...256).contains(eventLoops) else { throw ValidationError("--event-loops must be between 1 and 256") }
        configuration.eventLoops = eventLoops
        configuration.listener = try options.listener()
        configuration.tls = try options.tls()
        let gateway: Gateway
        do {
            gateway = try Gateway(configuration: configuration, logger: logger)
        } catch let error as VergeError {
            throw ValidationError(error.message)
        }
        try await runServices([gateway], stopOnStdinEOF: options.stopOnStdinEOF, logger: logger) {
            "gateway=\(await gateway.listenAddress.url())"
        }
    }
}

extension IsolationLevel: ExpressibleByArgument {}
