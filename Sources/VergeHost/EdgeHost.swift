import Foundation
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import VergeBundle
import VergeCore
import VergeHTTP
import VergeProtocol
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
    private let logger: Logger

    public init(configuration: HostConfiguration, supervisor: Supervisor, logger: Logger) throws {
        var logger = logger
        logger[metadataKey: "host.name"] = "\(configuration.name)"
        self.configuration = configuration
        self.logger = logger
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        self.ledger = try HostLedger(path: configuration.dataDirectory + "/host.sqlite")
        WorkerIdentity.protect(dataDirectory: configuration.dataDirectory)
        self.cache = BundleCache(dataDirectory: configuration.dataDirectory)
        self.deploymentsFile = DeploymentsFile(dataDirectory: configuration.dataDirectory)
        var workerUsers = WorkerIdentity.isAvailable
        if workerUsers, let problem = WorkerIdentity.unreachable([configuration.dataDirectory, configuration.runtimeDirectory]) {
            logger.error(
                "workers cannot run as users of their own: \(problem); they run as the host's user. Put the data and runtime directories under paths other users can traverse."
            )
            workerUsers = false
        }
        self.environment = PoolEnvironment(
            configuration: configuration, supervisor: supervisor,
            eventLoopGroup: MultiThreadedEventLoopGroupProvider.shared, launcher: launcher, logSink: logSink,
            logger: logger, workerUsers: workerUsers
        )
        // Serve what was deployed before a restart, even if the control plane never answers.
        let saved = deploymentsFile.load()
        if saved.refused > 0 {
            let message =
                "\(deploymentsFile.path) can be read by others: \(saved.refused) function(s) with secrets are not "
                + "served from it until the control plane sends them again; run chmod 600 on it"
            logger.error("\(message)")
        }
        for deployment in saved.deployments where cache.cachedManifest(deployment.version) == deployment.manifest {
            _ = deployments.install(FunctionPool(deployment: deployment, environment: environment))
        }
    }

    private var reporter: HostStatusReporter {
        HostStatusReporter(
            configuration: configuration, deployments: deployments, ledger: ledger, listenAddress: listenAddress)
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
        let invocations = InvocationHandler(
            host: hostInfo, configuration: configuration, ledger: ledger, logger: logger,
            ledgerSignal: { shipBell.ring() }
        )
        let server = HostServer(
            configuration: configuration, deployments: deployments, invocations: invocations, ledger: ledger,
            reporter: reporter
        )
        let http = try HTTPServer.streaming(
            bind: configuration.bind, name: "verge-host", listenAddress: listenAddress,
            limits: configuration.listener, tls: configuration.tls, logger: logger
        ) { request, writer, _ in
            try await server.respond(request, writer: writer)
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
            let client = ControlPlaneClient(
                baseURL: url, clusterKey: configuration.clusterKey, hostName: configuration.name)
            services.append(
                .init(
                    service: UsageShipper(
                        ledger: ledger, client: client, doorbell: shipBell, interval: configuration.shipInterval,
                        logger: logger
                    )))
            services.append(
                .init(
                    service: SyncAgent(host: self, client: client, interval: configuration.syncInterval, logger: logger)
                ))
        }
        services.append(.init(service: PoolsService(deployments: deployments, grace: configuration.stopGracePeriod)))
        services.append(.init(service: http))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        logger.info("host starting", metadata: ["host.location": "\(configuration.location)"])
        if !WorkerIdentity.isAvailable {
            logger.warning(
                "not running as root: workers run as the host's own user, without per-function users"
            )
        }
        try await group.run()
    }

    /// What the host reports about itself.
    public func status() async -> HostStatus {
        await reporter.status()
    }

    /// Installs the desired versions (fetching bundles it does not have) and retires functions no longer wanted.
    func converge(on desired: DesiredState, client: ControlPlaneClient) async {
        var changed = false
        let wanted = Set(desired.functions.map { FunctionKey(tenant: $0.tenant, name: $0.name) })
        for function in desired.functions {
            let key = FunctionKey(tenant: function.tenant, name: function.name)
            let current = deployments.pool(for: key)?.deployment
            if current?.version == function.version, current?.secretsVersion == function.secretsVersion { continue }
            do {
                let manifest: Manifest
                if let cached = cache.cachedManifest(function.version) {
                    manifest = cached
                } else {
                    let archive = try await client.bundle(function.version, limit: cache.limits.maxArchiveBytes)
                    manifest = try cache.store(archive, version: function.version)
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
                    bundleDirectory: cache.bundleDirectory(function.version), secrets: secrets.values,
                    secretsVersion: secrets.version
                )
                let old = deployments.install(FunctionPool(deployment: deployment, environment: environment))
                old?.retire()
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
