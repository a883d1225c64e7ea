import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import VergeControlPlane
import VergeCore
import VergeGateway
import VergeHTTP
import VergeHost
import VergeSupervisor

/// `verge dev`: control plane, gateway and every host of the cluster config in one foreground process.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run a local cluster: control plane, gateway and several edge hosts (fra, iad, sin by default).",
        discussion: """
            Prints a line `ready gateway=URL api=URL hosts=…` once every component listens, then runs until SIGINT \
            or SIGTERM, when it drains calls in flight, stops every worker, ships the remaining usage and exits.
            """
    )

    @Option(help: "Cluster config file (JSON). Default: built-in fra/iad/sin cluster.")
    var config: String?

    @Option(help: "Gateway address HOST:PORT (port 0 picks a free port). Overrides the config.")
    var gateway: String?

    @Option(help: "Control plane API address HOST:PORT. Overrides the config.")
    var api: String?

    @Option(
        name: .customLong("geoip"),
        help: """
            MaxMind DB file (.mmdb) that locates clients by address; reloaded when it changes. Overrides the config.
            """)
    var geoip: String?

    @Option(help: "Data directory (control plane and host databases, bundle caches).")
    var data: String = ".verge"

    @Option(name: .customLong("idle-timeout"), help: "Seconds an idle worker is kept before it is stopped.")
    var idleTimeout: Double?
    @Option(
        name: .customLong("init-timeout"),
        help: "Seconds a new worker may take to become ready before its start fails. Overrides the config.")
    var initTimeout: Double?

    @Option(help: "Python interpreter for Python functions. Default: /usr/bin/python3 when present.")
    var python: String?

    @Option(name: .customLong("max-workers"), help: "Most worker processes per host, over all functions.")
    var maxWorkers: Int?

    @Option(name: .customLong("max-memory-mb"), help: "Most memory (MiB of memory_mb) per host's workers together.")
    var maxMemoryMB: Int?

    @Option(name: .customLong("max-queued-calls"), help: "Most calls of one function waiting for a worker.")
    var maxQueuedCalls: Int?

    @Option(name: .customLong("runtime-dir"), help: "Directory of the in-worker runtimes (Runtime/).")
    var runtimeDirectory: String?

    @Option(
        help: """
            sandbox (default): every worker in a sandbox of its function version; the hosts refuse to start when they \
            cannot build one. none: run functions unsandboxed, as the host's user (only for code you trust).
            """)
    var isolation: IsolationLevel?

    @Option(
        name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (or LOG_LEVEL).")
    var logLevel: String?

    @Flag(
        name: .customLong("stop-on-stdin-eof"),
        help: "Shut down when standard input closes (for supervisors and test harnesses).")
    var stopOnStdinEOF = false

    func run() async throws {
        var cluster = try config.map(ClusterConfig.load(path:)) ?? ClusterConfig()
        if let gateway {
            guard let address = BindAddress(gateway) else {
                throw ValidationError("--gateway: expected HOST:PORT, got '\(gateway)'")
            }
            cluster.gateway = address
        }
        if let api {
            guard let address = BindAddress(api) else {
                throw ValidationError("--api: expected HOST:PORT, got '\(api)'")
            }
            cluster.api = address
        }
        if let idleTimeout {
            guard idleTimeout > 0, idleTimeout <= 86_400 else {
                throw ValidationError("--idle-timeout must be between 0 and 86400 seconds")
            }
            cluster.idleTimeoutSeconds = idleTimeout
        }
        if let initTimeout {
            guard initTimeout >= 0.1, initTimeout <= 600 else {
                throw ValidationError("--init-timeout must be between 0.1 and 600 seconds")
            }
            cluster.initTimeoutSeconds = initTimeout
        }
        if let python { cluster.python = python }
        if let geoip { cluster.geoipDatabase = geoip }
        if let isolation { cluster.isolation = isolation }
        if let maxWorkers { cluster.maxWorkers = maxWorkers }
        if let maxMemoryMB { cluster.maxMemoryMB = maxMemoryMB }
        if let maxQueuedCalls { cluster.maxQueuedCalls = maxQueuedCalls }
        do { try cluster.validate() } catch let error as VergeCLIError { throw ValidationError(error.description) }
        let runtimeDirectory = try RuntimeLocator.locate(explicit: self.runtimeDirectory)
        let dataDirectory = RuntimeLocator.absolute(data)

        let (logger, registry) = ProcessBootstrap.start(logLevel: logLevel)

        let local = try LocalCluster(
            cluster: cluster, dataDirectory: dataDirectory, runtimeDirectory: runtimeDirectory, logger: logger,
            metricsText: { registry.emitToString() }
        )
        try await local.run(stopOnStdinEOF: stopOnStdinEOF)
    }
}

/// The embedded cluster: one process, one supervisor loop, several hosts, each with its own data directory.
struct LocalCluster {
    let controlPlane: ControlPlane
    let gateway: Gateway
    let hosts: [EdgeHost]
    let loop: SupervisorLoop
    let logger: Logger

    init(
        cluster: ClusterConfig, dataDirectory: String, runtimeDirectory: String, logger: Logger,
        metricsText: @escaping @Sendable () -> String
    ) throws {
        var controlPlaneConfiguration = ControlPlaneConfiguration(dataDirectory: dataDirectory + "/control")
        controlPlaneConfiguration.bind = cluster.api
        controlPlaneConfiguration.listener = cluster.listener
        controlPlaneConfiguration.tls = cluster.tls
        do { try HTTPClient.useVergeTrust(cluster.tls) } catch { throw VergeCLIError(error.message) }
        controlPlaneConfiguration.writeRateLimit = RateLimit(
            perSecond: cluster.writeRatePerSecond, burst: cluster.writeBurst)
        controlPlane = try ControlPlane(
            configuration: controlPlaneConfiguration, logger: logger.withLabel("control-plane"),
            metricsText: metricsText
        )
        // The embedded components get their own credentials in process: nothing on a command line or in a file.
        let controlPlane = self.controlPlane

        loop = try SupervisorLoop()
        let supervisor = Supervisor(loop: loop, logger: logger)
        hosts = try cluster.hosts.map { host in
            var configuration = HostConfiguration(
                name: host.name, location: host.location, dataDirectory: dataDirectory + "/hosts/" + host.name,
                runtimeDirectory: runtimeDirectory
            )
            configuration.idleTimeout = .milliseconds(Int64(cluster.idleTimeoutSeconds * 1000))
            configuration.initTimeout = .milliseconds(Int64(cluster.initTimeoutSeconds * 1000))
            configuration.region = host.region ?? ""
            if !cluster.python.isEmpty { configuration.python = cluster.python }
            configuration.credential = try controlPlane.issueHostCredential(name: host.name).token
            configuration.listener = cluster.listener
            configuration.tls = cluster.tls
            configuration.syncInterval = .milliseconds(cluster.syncIntervalMs)
            configuration.isolationSettings.level = cluster.isolation
            cluster.applyCapacity(to: &configuration)
            return try EdgeHost(configuration: configuration, supervisor: supervisor, logger: logger.withLabel("host"))
        }

        // The control plane's URL is known once it listens; `DeferredHost` and `DeferredGateway` pass it on.
        var gatewayConfiguration = GatewayConfiguration(controlPlaneURL: "")
        gatewayConfiguration.bind = cluster.gateway
        gatewayConfiguration.trustedProxies = cluster.trustedProxies.compactMap(CIDR.init)
        gatewayConfiguration.defaultLocation = cluster.defaultLocation
        gatewayConfiguration.geoipDatabase = cluster.geoipDatabase.map(RuntimeLocator.absolute)
        gatewayConfiguration.credential = try controlPlane.issueGatewayCredential(label: "local-gateway").token
        gatewayConfiguration.domain = cluster.domain
        gatewayConfiguration.listener = cluster.listener
        gatewayConfiguration.tls = cluster.tls
        do {
            gateway = try Gateway(configuration: gatewayConfiguration, logger: logger.withLabel("gateway"))
        } catch let error as VergeError {
            throw VergeCLIError(error.message)
        }
        self.logger = logger
    }

    func run(stopOnStdinEOF: Bool) async throws {
        // Control plane first (the others need its port), then hosts, then the gateway; shutdown in reverse.
        let (controlPlane, gateway, hosts) = (self.controlPlane, self.gateway, self.hosts)
        let services: [any Service] =
            [controlPlane] + hosts.map { DeferredHost(host: $0, controlPlane: controlPlane) }
            + [DeferredGateway(gateway: gateway, controlPlane: controlPlane)]
        defer { loop.shutdown() }
        try await runServices(services, stopOnStdinEOF: stopOnStdinEOF, logger: logger) {
            let api = await controlPlane.listenAddress.url()
            storeCLICredential(api: api)
            let gatewayURL = await gateway.listenAddress.url()
            var hostURLs: [String] = []
            for host in hosts { hostURLs.append("\(host.configuration.name)=\(await host.listenAddress.url())") }
            // Ready means routable: wait (briefly) until every host knows the gateway's proof and the gateway knows it.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while gateway.directory.snapshot.filter(\.acceptsGateway).count < hosts.count, clock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            return "gateway=\(gatewayURL) api=\(api) hosts=\(hostURLs.joined(separator: ","))"
        }
        logger.info("stopped")
    }

    /// Stores the admin token (created on the first start on this data directory) in the user's credentials file
    /// under this API URL, so `verge deploy` and friends work with no flags.
    private func storeCLICredential(api: String) {
        do {
            guard let token = try SecretFile.read(controlPlane.adminTokenPath) else {
                logger.warning(
                    "no admin token at \(controlPlane.adminTokenPath); the CLI needs --token or VERGE_TOKEN for \(api)")
                return
            }
            let credentials = CLICredentials.standard
            try credentials.store(token, for: api)
            logger.info("CLI credential for \(api) stored in \(credentials.path)")
        } catch {
            logger.warning("CLI credential not stored", metadata: ["error": "\(error)"])
        }
    }
}

extension Logger {
    fileprivate func withLabel(_ component: String) -> Logger {
        var logger = self
        logger[metadataKey: "component"] = "\(component)"
        return logger
    }
}

/// Hosts learn the control plane's URL once it has bound its port.
struct DeferredHost: Service {
    let host: EdgeHost
    let controlPlane: ControlPlane

    func run() async throws {
        let url = await controlPlane.listenAddress.url()
        try await host.run(controlPlaneURL: url)
    }
}

struct DeferredGateway: Service {
    let gateway: Gateway
    let controlPlane: ControlPlane

    func run() async throws {
        let url = await controlPlane.listenAddress.url()
        try await gateway.run(controlPlaneURL: url)
    }
}

/// Returns when standard input reaches end of file, which shuts the cluster down gracefully: whoever started it
/// holds the other end, and when that process dies for any reason the cluster does not outlive it.
struct StdinWatcher: Service {
    func run() async throws {
        let fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)
        guard fd >= 0 else { return }
        let channel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroupProvider.shared)
            .channelInitializer { channel in channel.pipeline.addHandler(DiscardingHandler()) }
            .takingOwnershipOfDescriptor(input: fd)
            .get()
        // Returns at end of input, or when the cluster shuts down for another reason (a signal).
        try? await cancelWhenGracefulShutdown {
            try await withTaskCancellationHandler {
                try await channel.closeFuture.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        }
    }
}

/// Reads and drops whatever arrives; closes the channel at end of input.
final class DiscardingHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelEvent, case .inputClosed = event as! ChannelEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}
