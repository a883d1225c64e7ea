import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import VergeCore
import VergeHTTP

/// The gateway: finds where the client is, picks the nearest healthy host that runs the function, and proxies the
/// call with bodies streamed both ways (`GatewayProxy`). Failed connections eject a host at once, its own 5xx count
/// against it, and it returns after a backoff; calls move to the next nearest host by the rules in `GatewayProxy`.
public final class Gateway: Service, Sendable {
    public let configuration: GatewayConfiguration
    public let listenAddress = ListenAddress()
    public let directory: HostDirectory
    /// Chooses candidate hosts from ``directory``; rate-limits the refreshes calls may ask for.
    public let resolver: RouteResolver
    let locator: ClientLocator
    /// The IP → place lookup behind ``locator`` (a MaxMind database, the tor-geoipdb fallback, or none).
    public let geoIP: GeoIPService
    let logger: Logger

    /// Throws when a configured GeoIP database cannot be opened.
    public init(configuration: GatewayConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.directory = HostDirectory(unhealthyThreshold: configuration.unhealthyThreshold)
        self.resolver = RouteResolver(directory: directory)
        self.geoIP = try GeoIPService(
            databasePath: configuration.geoipDatabase, reloadInterval: configuration.geoipReloadInterval,
            fallbackIPv4: configuration.countryFallbackFiles.ipv4,
            fallbackIPv6: configuration.countryFallbackFiles.ipv6, logger: logger)
        self.locator = ClientLocator(
            trustedProxies: configuration.trustedProxies, defaultLocation: configuration.defaultLocation, geoIP: geoIP)
        self.logger = logger
    }

    public func run() async throws {
        try await run(controlPlaneURL: configuration.controlPlaneURL)
    }

    /// Runs with the control plane at `controlPlaneURL` (known only once it has bound its port, in a local cluster).
    public func run(controlPlaneURL: String) async throws {
        let credential: String
        if let configured = configuration.credential {
            credential = configured
        } else {
            credential = try await ClusterJoin.credential(
                file: configuration.credentialFile, joinToken: configuration.joinToken, role: .gateway,
                name: "gateway", controlPlaneURL: controlPlaneURL)
        }
        let proofs = try HostProofs(credential: credential)
        var clientConfiguration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: TimeAmount(configuration.connectTimeout)),
            decompression: .disabled
        )
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        clientConfiguration.tlsConfiguration = try configuration.tls.clientConfiguration()
        // A refused connection fails at once so the call can move to the next host; no retrying the dead one.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(
            eventLoopGroup: MultiThreadedEventLoopGroupProvider.shared, configuration: clientConfiguration)
        let refresher = HostListRefresher(
            gateway: self, client: client, controlPlaneURL: controlPlaneURL, credential: credential, proofs: proofs)
        let pools = UpstreamPools(
            connectTimeout: TimeAmount(configuration.connectTimeout),
            tls: try configuration.tls.clientConfiguration().map { try NIOSSLContext(configuration: $0) })
        guard configuration.eventLoops >= 1 else {
            throw VergeError(.badRequest, "the gateway needs at least one event loop: set eventLoops to 1 or more")
        }
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoops)
        defer { eventLoops.shutdownGracefully { _ in } }
        let http = try HandlerServer.make(
            bind: configuration.bind, name: "verge-gateway", listenAddress: listenAddress,
            limits: configuration.listener, tls: configuration.tls, logger: logger, eventLoopGroup: eventLoops
        ) { [self] _ in
            [ProxyHandler(gateway: self, pools: pools, refresher: refresher, proofs: proofs)]
        }
        logger.info("clients located by \(geoIP.summary)")
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: geoIP),
                    .init(service: refresher),
                    .init(service: HealthChecker(gateway: self, client: client)),
                    .init(service: http),
                ],
                gracefulShutdownSignals: [],
                logger: logger
            ))
        do {
            try await group.run()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    /// Whether an incoming field is a location claim the locator consumed (geo headers, `forwarded`, `x-real-ip`
    /// and the like; see ``RoutingHeaders``), which never reaches a function. `x-forwarded-for` is not: the proxy
    /// extends a trusted peer's chain and replaces anyone else's.
    func isLocatorInput(_ name: String) -> Bool {
        name != "x-forwarded-for" && RoutingHeaders.mustStrip(name)
    }

    /// The fields that tell a function where its client is and how that was found, the host chosen and how far it
    /// is (``RoutingHeaders/forwarded(client:route:)``). Called for every host a call is sent to.
    func locationFields(for client: LocatedClient, route: Route) -> [(name: String, value: String)] {
        RoutingHeaders.forwarded(client: client, route: route)
    }

    /// Methods besides GET, HEAD and OPTIONS each function's manifest marks idempotent, as its hosts report them;
    /// a method counts only when every host running the function says so (during a rollout, versions differ).
    private let idempotentMethods = Mutex<[FunctionRef: Set<String>]>([:])

    func updateIdempotentMethods(_ summaries: [HostSummary]) {
        var methods: [FunctionRef: Set<String>] = [:]
        for host in summaries {
            for function in host.functions {
                let ref = FunctionRef(tenant: function.tenant, name: function.name)
                let marked = Set(function.idempotentMethods ?? [])
                methods[ref] = methods[ref].map { $0.intersection(marked) } ?? marked
            }
        }
        idempotentMethods.withLock { $0 = methods.filter { !$0.value.isEmpty } }
    }

    /// Whether `method` may be sent to another host after a failure before the answer: GET, HEAD, OPTIONS, and
    /// the methods the function's manifest marks idempotent.
    func isIdempotent(_ method: String, for function: FunctionRef) -> Bool {
        if method == "GET" || method == "HEAD" || method == "OPTIONS" { return true }
        return idempotentMethods.withLock { $0[function]?.contains(method) ?? false }
    }

    /// Whether `error` means the host could not be reached at all (so no byte of the call can have reached it).
    static func isConnectFailure(_ error: any Error) -> Bool {
        if error is NIOConnectionError { return true }
        if let error = error as? HTTPClientError, error == .connectTimeout { return true }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        if let error = error as? IOError, [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(error.errnoCode) {
            return true
        }
        return false
    }
}

/// Refreshes the host list from the control plane; keeps the last list when it is unreachable. Registers the
/// hashes of its proofs for the hosts listed whenever that list of names changes (a host joined or left), and routes
/// to a host only once the host reports that it holds this gateway's proof.
struct HostListRefresher: Service {
    let gateway: Gateway
    let client: HTTPClient
    let controlPlaneURL: String
    let credential: String
    let proofs: HostProofs
    let coordinator = RefreshCoordinator()

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    try await refresh()
                    failures = 0
                } catch {
                    failures += 1
                    if failures == 1 || failures % 60 == 0 {
                        gateway.logger.info(
                            "host list not refreshed; routing with the last one", metadata: ["error": "\(error)"])
                    }
                }
                try await Task.sleep(for: gateway.configuration.hostRefreshInterval)
            }
        }
    }

    /// Makes sure the host list was fetched after `moment` (joining a refresh already under way if it started later).
    func refresh(after moment: ContinuousClock.Instant) async {
        await coordinator.refresh(after: moment) {
            try? await refresh()
        }
    }

    /// Fetches the host list once.
    func refresh() async throws {
        var request = HTTPClientRequest(url: controlPlaneURL + "/v1/hosts")
        request.headers.add(name: "authorization", value: "Bearer " + credential)
        let response = try await client.execute(request, timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 32 * 1024 * 1024)
        guard response.status == .ok else {
            throw VergeError(.upstreamFailed, "control plane answered \(response.status.code)")
        }
        let summaries = try JSONCoding.decoder.decode([HostSummary].self, from: Data(body.readableBytesView))
        gateway.directory.update(summaries, gatewayID: proofs.id)
        gateway.updateIdempotentMethods(summaries)
        let names = Set(summaries.map(\.name))
        let now = ContinuousClock.now
        if proofs.needsRegistration(names, now: now) {
            try await register(names)
            proofs.registered(names, at: now)
        }
    }

    /// Registers the hashes of this gateway's proofs for `hosts` (replacing those it registered before).
    private func register(_ hosts: Set<String>) async throws {
        var request = HTTPClientRequest(url: controlPlaneURL + "/v1/internal/gateway/host-proofs")
        request.method = .PUT
        request.headers.add(name: "authorization", value: "Bearer " + credential)
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(try JSONCoding.encoder.encode(proofs.registration(for: hosts)))
        let response = try await client.execute(request, timeout: .seconds(5))
        _ = try await response.body.collect(upTo: 64 * 1024)
        guard response.status == .ok else {
            throw VergeError(
                .upstreamFailed, "control plane refused the host proofs: \(response.status.code)")
        }
    }
}

/// Checks every host's `/_verge/health` at a fixed interval.
struct HealthChecker: Service {
    let gateway: Gateway
    let client: HTTPClient

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await withDiscardingTaskGroup { group in
                    for host in gateway.directory.snapshot {
                        group.addTask { await check(host) }
                    }
                }
                try await Task.sleep(for: gateway.configuration.healthCheckInterval)
            }
        }
    }

    private func check(_ host: RoutableHost) async {
        var healthy = false
        do {
            let response = try await client.execute(
                HTTPClientRequest(url: host.url + "/_verge/health"), timeout: .seconds(1))
            _ = try await response.body.collect(upTo: 64 * 1024)
            healthy = response.status == .ok
        } catch {
            healthy = false
        }
        let now = ContinuousClock.now
        let backoff = gateway.configuration.ejectionBackoff
        let transition = gateway.directory.record(host.name) {
            healthy ? $0.checkSucceeded(now: now, backoff: backoff) : $0.checkFailed(now: now, backoff: backoff)
        }
        switch transition {
        case .becameHealthy: gateway.logger.info("host back in rotation", metadata: ["host.name": "\(host.name)"])
        case .becameUnhealthy: gateway.logger.warning("host out of rotation", metadata: ["host.name": "\(host.name)"])
        case .none: break
        }
    }
}
