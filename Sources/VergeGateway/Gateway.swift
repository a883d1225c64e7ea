import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import VergeCore
import VergeHTTP

/// The gateway: finds where the client is, picks the nearest healthy host that runs the function, and proxies the
/// call with bodies streamed both ways. Failed connections eject a host at once; idempotent calls that never
/// reached a host are retried on the next nearest.
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

    /// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the platform's own.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

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
            gateway: self, client: client, controlPlaneURL: controlPlaneURL, credential: credential)
        let proxy = Proxy(gateway: self, client: client, refresher: refresher, credential: credential)
        let http = try HTTPServer.streaming(
            bind: configuration.bind, name: "verge-gateway", listenAddress: listenAddress,
            limits: configuration.listener, tls: configuration.tls, logger: logger
        ) { request, writer, channel in
            try await proxy.forward(request, writer: writer, peer: channel.remoteAddress)
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

    struct Proxy: Sendable {
        let gateway: Gateway
        let client: HTTPClient
        let refresher: HostListRefresher
        let credential: String

        func forward(_ request: Request, writer: consuming ResponseWriter, peer: SocketAddress?) async throws {
            let clock = ContinuousClock()
            let start = clock.now
            let configuration = gateway.configuration
            let path = request.uri.path
            if path == "/_verge/health" {
                try await writer.writeJSON(gateway.health)
                return
            }
            guard
                let address = FunctionAddress.resolve(
                    authority: request.head.authority, path: path, domain: configuration.domain)
            else {
                try await writer.writeError(VergeError(.functionNotFound, "no function is deployed at '\(path)'"))
                return
            }
            let name = address.name
            let function = FunctionRef(tenant: address.tenant, name: name)
            let client = gateway.locator.locate(headers: request.headers, peer: peer)
            // Nearest first; waits for a (coalesced, rate-limited) host-list refresh only in the cases RouteResolver
            // describes.
            let routes = await gateway.resolver.routes(for: function, from: client.location) { moment in
                await refresher.refresh(after: moment)
            }
            guard !routes.isEmpty else {
                if gateway.directory.isDeployed(function) {
                    try await writer.writeError(
                        VergeError(.noHealthyHost, "no healthy host runs '\(name)' right now"),
                        headers: [.retryAfter: "1"]
                    )
                } else {
                    try await writer.writeError(VergeError(.functionNotFound, "no function is deployed at '/\(name)'"))
                }
                return
            }
            let hasBody =
                request.headers[.contentLength].map { $0 != "0" } ?? (request.headers[.transferEncoding] != nil)
            let retryable = !hasBody && [.get, .head, .options].contains(request.method)
            var lastError: (any Error)?
            for route in routes.prefix(retryable ? 3 : 1) {
                let upstream = makeUpstreamRequest(
                    request, address: address, route: route, client: client, peer: peer, hasBody: hasBody)
                let response: HTTPClientResponse
                do {
                    response = try await self.client.execute(
                        upstream, timeout: TimeAmount(configuration.requestTimeout))
                } catch {
                    lastError = error
                    // Only a failure to reach the host says something about the host. Anything else (the client's
                    // body stream failed, the call outlived its deadline) fails this call alone and ejects no one.
                    guard Gateway.isConnectFailure(error) else { break }
                    let transition = gateway.directory.record(route.host) { $0.connectionFailed() }
                    if transition == .becameUnhealthy {
                        gateway.logger.warning(
                            "host ejected: cannot connect",
                            metadata: ["host.name": "\(route.host)", "error": "\(error)"]
                        )
                    }
                    Counter(label: "verge_gateway_upstream_failures_total", dimensions: [("host", route.host)])
                        .increment()
                    continue
                }
                var fields = HTTPFields()
                for header in response.headers where !Gateway.hopByHop.contains(header.name.lowercased()) {
                    if let name = HTTPField.Name(header.name) {
                        fields.append(HTTPField(name: name, value: header.value))
                    }
                }
                fields.append(
                    HTTPField(
                        name: HTTPField.Name("server-timing")!,
                        value: RoutingHeaders.serverTiming(client: client, route: route, duration: clock.now - start)
                    ))
                Counter(label: "verge_gateway_requests_total", dimensions: [("host", route.host)]).increment()
                var body: (any ResponseBodyWriter)?
                do {
                    body = try await writer.writeHead(
                        HTTPResponse(status: .init(code: Int(response.status.code)), headerFields: fields))
                } catch {
                    return
                }
                // A host never sends a body HTTP forbids; should one arrive anyway, it is read and dropped here so
                // no byte of it can reach the client's next exchange.
                let status = Int(response.status.code)
                let bodyAllowed = request.method != .head && status != 204 && status != 304
                var dropped = 0
                for try await chunk in response.body {
                    if bodyAllowed { try await body!.write(chunk) } else { dropped += chunk.readableBytes }
                }
                if dropped > 0 {
                    gateway.logger.info(
                        "response body dropped: HTTP allows none here",
                        metadata: ["host.name": "\(route.host)", "http.status": "\(status)", "bytes": "\(dropped)"])
                }
                try await body!.finish(nil)
                return
            }
            gateway.logger.info(
                "call failed at every host tried", metadata: ["error": "\(lastError.map { "\($0)" } ?? "")"])
            try await writer.writeError(VergeError(.upstreamFailed, "no host could take the call"))
        }

        private func makeUpstreamRequest(
            _ request: Request, address: FunctionAddress, route: Route, client: LocatedClient, peer: SocketAddress?,
            hasBody: Bool
        ) -> HTTPClientRequest {
            var target = route.url + address.hostPath
            if let query = request.uri.query { target += "?" + query }
            var upstream = HTTPClientRequest(url: target)
            upstream.method = HTTPMethod(rawValue: request.method.rawValue)
            var forwardedFor: String?
            for field in request.headers {
                let name = field.name.canonicalName
                if Gateway.hopByHop.contains(name) || name.hasPrefix("x-verge-") || name == "host" { continue }
                if name == "x-forwarded-for" {
                    // Only a trusted proxy's chain is kept; anyone else's is replaced by what the socket says.
                    if gateway.locator.isTrusted(peer) { forwardedFor = field.value }
                    continue
                }
                if name == "x-forwarded-proto" || RoutingHeaders.mustStrip(name) { continue }
                upstream.headers.add(name: name, value: field.value)
            }
            let peerIP = peer?.ipAddress ?? "unknown"
            upstream.headers.add(name: "x-forwarded-for", value: forwardedFor.map { "\($0), \(peerIP)" } ?? peerIP)
            upstream.headers.add(name: "x-forwarded-proto", value: gateway.configuration.tls.serves ? "https" : "http")
            if let host = request.head.authority { upstream.headers.add(name: "x-forwarded-host", value: host) }
            for (name, value) in RoutingHeaders.forwarded(client: client, route: route) {
                upstream.headers.add(name: name, value: value)
            }
            upstream.headers.add(name: VergeHeaders.tenant, value: address.tenant)
            upstream.headers.add(name: VergeHeaders.credential, value: credential)
            if hasBody {
                let length = request.headers[.contentLength].flatMap(Int.init)
                upstream.body = .stream(request.body, length: length.map { .known(Int64($0)) } ?? .unknown)
            }
            return upstream
        }
    }
}

/// Refreshes the host list from the control plane; keeps the last list when it is unreachable.
struct HostListRefresher: Service {
    let gateway: Gateway
    let client: HTTPClient
    let controlPlaneURL: String
    let credential: String
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
        gateway.directory.update(try JSONCoding.decoder.decode([HostSummary].self, from: Data(body.readableBytesView)))
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
        let transition = gateway.directory.record(host.name) { healthy ? $0.checkSucceeded() : $0.checkFailed() }
        switch transition {
        case .becameHealthy: gateway.logger.info("host back in rotation", metadata: ["host.name": "\(host.name)"])
        case .becameUnhealthy: gateway.logger.warning("host out of rotation", metadata: ["host.name": "\(host.name)"])
        case .none: break
        }
    }
}
