import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import VergeBundle
import VergeCore
import VergeHTTP
import VergeProtocol
import VergeSandbox
import VergeSupervisor
import VergeUsage

/// One edge host: an HTTP server that runs deployed functions in per-version process pools, records usage in
/// its own SQLite ledger, syncs with the control plane and ships usage to it. A `Service`; on graceful shutdown it
/// stops accepting, lets calls in flight finish, stops every worker, then flushes logs and ships usage.
public final class EdgeHost: Service, Sendable {
    public let configuration: HostConfiguration
    public let listenAddress = ListenAddress()
    private let ledger: HostLedger
    private let deployments = DeploymentTable()
    private let cache: BundleCache
    private let deploymentsFile: DeploymentsFile
    private let environment: PoolEnvironment
    private let launcher = WorkerLauncher()
    private let logSink = FunctionLogSink()
    private let shipBell = Doorbell()
    private let trustedCallers: TrustedCallerList
    private let logger: Logger
    /// The workers' sandbox; `nil` only with `--isolation none`.
    private let sandbox: Sandbox?
    /// The threads of the host's connections and workers' sockets (`HostConfiguration.eventLoops`).
    private let eventLoops: MultiThreadedEventLoopGroup

    public init(configuration: HostConfiguration, supervisor: Supervisor, logger: Logger) throws {
        var logger = logger
        logger[metadataKey: "host.name"] = "\(configuration.name)"
        if configuration.isolationSettings.level == .none {
            // Every line this host logs says it runs functions unprotected.
            logger[metadataKey: "host.isolation"] = "none"
        }
        try configuration.validateCapacity()
        self.configuration = configuration
        self.logger = logger
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        try Self.checkIdentity(configuration)
        self.trustedCallers = TrustedCallerList(path: configuration.dataDirectory + "/trusted-callers.json")
        self.ledger = try HostLedger(path: configuration.dataDirectory + "/host.sqlite")
        Self.protect(dataDirectory: configuration.dataDirectory)
        self.cache = BundleCache(dataDirectory: configuration.dataDirectory)
        self.deploymentsFile = DeploymentsFile(dataDirectory: configuration.dataDirectory)
        let sandbox: Sandbox?
        switch configuration.isolationSettings.level {
        case .sandbox:
            let settings = configuration.isolationSettings
            var sandboxConfiguration = SandboxConfiguration(
                hostName: configuration.name, scope: configuration.dataDirectory, helper: settings.helper)
            sandboxConfiguration.bubblewrap = settings.bubblewrap
            sandboxConfiguration.stageRoot = settings.stageRoot
            sandboxConfiguration.usersDatabase = settings.usersDatabase
            sandboxConfiguration.uidRange = settings.uidRange
            sandbox = try Sandbox.prepare(sandboxConfiguration, logger: logger)
        case .none:
            sandbox = nil
            logger.warning(
                "isolation=none: functions run WITHOUT a sandbox, as the host's own user, with no enforced limits (chosen with --isolation none)"
            )
        }
        self.sandbox = sandbox
        self.eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoops)
        var environment = PoolEnvironment(
            configuration: configuration, supervisor: supervisor, eventLoopGroup: eventLoops, launcher: launcher,
            admission: HostAdmission(
                capacity: .init(workers: configuration.maxWorkers, memoryMB: configuration.maxMemoryMB)),
            logSink: logSink, logger: logger, sandbox: sandbox
        )
        if let sandbox, sandbox.configuration.parkedHelpers > 0 {
            environment.parkedHelpers = ParkedHelperPool(
                sandbox: sandbox, supervisor: supervisor, capacity: sandbox.configuration.parkedHelpers,
                logger: logger)
        }
        self.environment = environment
        // Serve what was deployed before a restart, even if the control plane never answers.
        let saved = deploymentsFile.load()
        if saved.refused > 0 {
            let message =
                "\(deploymentsFile.path) can be read by others: \(saved.refused) function(s) with secrets are not "
                + "served from it until the control plane sends them again; run chmod 600 on it"
            logger.error("\(message)")
        }
        for deployment in saved.deployments
        where cache.cachedManifest(tenant: deployment.tenant, version: deployment.version) == deployment.manifest {
            let pool = FunctionPool(deployment: deployment, environment: environment)
            _ = deployments.install(pool)
            pool.warmUp()
        }
    }

    private var reporter: HostStatusReporter {
        HostStatusReporter(
            configuration: configuration, deployments: deployments, ledger: ledger, listenAddress: listenAddress,
            trustedCallers: trustedCallers)
    }

    public func run() async throws {
        try await run(controlPlaneURL: configuration.controlPlaneURL)
    }

    /// Runs with the control plane at `controlPlaneURL` (known only once it has bound its port, in a local cluster).
    public func run(controlPlaneURL: String?) async throws {
        let hostInfo = HostInfo(
            name: configuration.name, latitude: configuration.location.latitude,
            longitude: configuration.location.longitude
        )
        let shipBell = self.shipBell
        let ledgerHealth = LedgerHealth(ledger: ledger, logger: logger)
        let invocations = InvocationHandler(
            host: hostInfo, configuration: configuration, ledger: ledger, logger: logger,
            ledgerSignal: { shipBell.ring() }, ledgerHealth: ledgerHealth
        )
        let server = HostServer(
            configuration: configuration, deployments: deployments, invocations: invocations, ledger: ledger,
            reporter: reporter, trustedCallers: trustedCallers, ledgerHealth: ledgerHealth
        )
        // Whatever ends the run — a failure to start included — the parked helpers, the cgroups and the event loops
        // are released below.
        let outcome: Result<Void, any Error>
        do {
            let logger = self.logger
            let http = try HandlerServer.make(
                bind: configuration.bind, name: "verge-host", listenAddress: listenAddress,
                limits: configuration.listener, tls: configuration.tls, logger: logger, eventLoopGroup: eventLoops
            ) { _ in
                [
                    HostConnectionHandler(
                        responder: { request, writer, eventLoop in
                            try await server.respond(request, writer: writer, eventLoop: eventLoop)
                        }, logger: logger)
                ]
            }
            // Started in this order, stopped in reverse: the HTTP server drains first, then the pools stop their
            // workers, then the agents finish (a last usage shipment), then logs are flushed.
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
                .init(service: LauncherService(launcher: launcher)),
                .init(service: LogFlusher(
                    sink: logSink, ledger: ledger, interval: .milliseconds(200), retention: configuration.retention,
                    logger: logger
                )),
            ]
            if let url = controlPlaneURL {
                let credential = try await credential(controlPlaneURL: url)
                let client = ControlPlaneClient(baseURL: url, credential: credential, hostName: configuration.name)
                services.append(
                    .init(
                        service: UsageShipper(
                            ledger: ledger, client: client, doorbell: shipBell, interval: configuration.shipInterval,
                            logger: logger
                        )))
                services.append(
                    .init(
                        service: SyncAgent(
                            host: self, client: client, interval: configuration.syncInterval, logger: logger)))
            }
            if let helpers = environment.parkedHelpers, let sandbox {
                services.append(
                    .init(
                        service: ParkedHelperRecycler(
                            helpers: helpers, launcher: launcher, maxAge: sandbox.configuration.parkedHelperMaxAge)))
            }
            services.append(
                .init(service: PoolsService(deployments: deployments, grace: configuration.stopGracePeriod)))
            services.append(.init(service: http))
            let group = ServiceGroup(
                configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
            logger.info(
                "host starting",
                metadata: [
                    "host.location": "\(configuration.location)",
                    "host.isolation": "\(configuration.isolationSettings.level.rawValue)",
                ])
            #if VERGE_BENCH_NO_LEDGER
            logger.critical("benchmark-only build (VERGE_BENCH_NO_LEDGER): this host writes NO usage records")
            #endif
            if let helpers = environment.parkedHelpers { launcher.refill(helpers) }
            try await group.run()
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        // Every worker has stopped: the helpers still parked go, then this host's cgroup directories.
        await environment.parkedHelpers?.shutdown()
        sandbox?.cgroups.removeOwn()
        try? await eventLoops.shutdownGracefully()
        try outcome.get()
    }

    /// What the host reports about itself.
    public func status() async -> HostStatus {
        await reporter.status()
    }

    /// Where a joined host keeps its own credential (mode 0600).
    public var credentialPath: String { configuration.dataDirectory + "/credential" }

    /// The host's credential: configured, or from its credential file, or obtained with its join token.
    private func credential(controlPlaneURL: String) async throws -> String {
        if let credential = configuration.credential { return credential }
        return try await ClusterJoin.credential(
            file: credentialPath, joinToken: configuration.joinToken, role: .host, name: configuration.name,
            controlPlaneURL: controlPlaneURL)
    }

    /// Refuses, before anything starts, a host that could never authenticate or would advertise an unreachable URL.
    private static func checkIdentity(_ configuration: HostConfiguration) throws {
        if let url = configuration.advertiseURL {
            try HostAddress.validateAdvertised(url)
        } else if ["0.0.0.0", "::", "[::]"].contains(configuration.bind.host) {
            throw VergeError(
                .badRequest,
                "host binds \(configuration.bind) but advertises no reachable URL: set --advertise-url http://ADDRESS:PORT")
        }
        if configuration.controlPlaneURL != nil, configuration.credential == nil, configuration.joinToken == nil,
            try SecretFile.read(configuration.dataDirectory + "/credential") == nil
        {
            throw VergeError(
                .unauthorized,
                "host '\(configuration.name)' has no credential: create a join token with `verge join-tokens create --role host` and pass it with --join-token-file or VERGE_JOIN_TOKEN"
            )
        }
    }

    /// Installs the desired versions (fetching bundles it does not have) and retires functions no longer wanted.
    func converge(on desired: DesiredState, client: ControlPlaneClient) async {
        do { try trustedCallers.update(desired.trustedCallers) } catch {
            logger.warning("trusted callers not saved", metadata: ["error": "\(error)"])
        }
        var changed = false
        let wanted = Set(desired.functions.map { FunctionKey(tenant: $0.tenant, name: $0.name) })
        for function in desired.functions {
            let key = FunctionKey(tenant: function.tenant, name: function.name)
            let current = deployments.pool(for: key)?.deployment
            if current?.version == function.version, current?.secretsVersion == function.secretsVersion { continue }
            do {
                let manifest: Manifest
                if let cached = cache.cachedManifest(tenant: function.tenant, version: function.version) {
                    manifest = cached
                } else {
                    let archive = try await client.bundle(function.version, limit: cache.limits.maxArchiveBytes)
                    manifest = try cache.store(archive, tenant: function.tenant, version: function.version)
                }
                guard manifest.name == function.name else {
                    throw VergeError(
                        .invalidBundle, "bundle \(function.version) names '\(manifest.name)', not '\(function.name)'")
                }
                // Without its secrets a version does not start: the one serving now keeps serving.
                var secrets = FunctionSecrets(version: nil, values: [:])
                if let wanted = function.secretsVersion {
                    secrets = try await client.secrets(tenant: function.tenant, function: function.name)
                    guard secrets.version == wanted else {
                        throw VergeError(.upstreamFailed, "the function's secrets changed while they were fetched")
                    }
                    for (name, value) in secrets.values
                    where Manifest.environmentNameProblem(name) != nil || value.utf8.contains(0) {
                        throw VergeError(
                            .upstreamFailed, "the control plane sent an invalid secret '\(name.prefix(128))'")
                    }
                }
                let deployment = Deployment(
                    tenant: function.tenant, name: function.name, version: function.version, manifest: manifest,
                    bundleDirectory: cache.bundleDirectory(tenant: function.tenant, version: function.version),
                    secrets: secrets.values, secretsVersion: secrets.version, versionNumber: function.number
                )
                if manifest.memoryMB > configuration.maxMemoryMB {
                    logger.warning(
                        "function needs more memory per worker than the host's capacity; its calls will get 503",
                        metadata: [
                            "function.name": "\(key)", "function.memory_mb": "\(manifest.memoryMB)",
                            "host.max_memory_mb": "\(configuration.maxMemoryMB)",
                        ])
                }
                let pool = FunctionPool(deployment: deployment, environment: environment)
                let old = deployments.install(pool)
                old?.retire()
                pool.warmUp()
                changed = true
                logger.info(
                    "function installed",
                    metadata: ["function.name": "\(key)", "function.version": "\(function.version.prefix(12))"])
            } catch {
                logger.warning("cannot install function", metadata: ["function.name": "\(key)", "error": "\(error)"])
            }
        }
        for pool in deployments.all where !wanted.contains(pool.deployment.key) {
            deployments.remove(pool.deployment.key)?.retire()
            changed = true
            logger.info("function removed", metadata: ["function.name": "\(pool.deployment.key)"])
        }
        if changed {
            do { try deploymentsFile.save(deployments.deployments) } catch {
                logger.warning("deployments not saved", metadata: ["error": "\(error)"])
            }
        }
    }
}

extension EdgeHost {
    /// The host's data directory holds its databases, credentials and bundles: only the host's user may enter it.
    /// Workers reach their bundle through their sandbox's bind mount, not through this directory.
    static func protect(dataDirectory: String) {
        chmod(dataDirectory, 0o700)
        for suffix in ["", "-wal", "-shm"] { chmod(dataDirectory + "/host.sqlite" + suffix, 0o600) }
        // It holds the functions' secrets (see `DeploymentsFile`).
        chmod(dataDirectory + "/deployments.json", 0o600)
    }
}

/// Runs the worker launcher until shutdown.
struct LauncherService: Service {
    let launcher: WorkerLauncher

    func run() async throws {
        await withGracefulShutdownHandler {
            await launcher.run()
        } onGracefulShutdown: {
            launcher.finish()
        }
    }
}

/// Replaces parked sandbox helpers once they have waited `maxAge` (``ParkedHelperPool/recycle(olderThan:now:)``), so
/// no worker starts with a view of the host's mounts older than that.
struct ParkedHelperRecycler: Service {
    let helpers: ParkedHelperPool
    let launcher: WorkerLauncher
    let maxAge: Duration

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: maxAge / 4)
                if helpers.recycle(olderThan: maxAge) > 0 { launcher.refill(helpers) }
            }
        }
    }
}

/// On shutdown, stops every pool: idle workers at once, busy ones after their call or at the grace deadline.
struct PoolsService: Service {
    let deployments: DeploymentTable
    let grace: Duration

    func run() async throws {
        try? await gracefulShutdown()
        await withDiscardingTaskGroup { group in
            for pool in deployments.removeAll() {
                group.addTask { await pool.shutdown(deadline: grace) }
            }
        }
    }
}
