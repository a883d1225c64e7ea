import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import VergeCore
import VergeHTTP
import VergeProtocol
import VergeUsage

/// The host's HTTP front: `/{function}/…` invokes a function; `/_verge/health`, `/_verge/status` and
/// `/_verge/logs` serve the platform.
struct HostServer: Sendable {
    let configuration: HostConfiguration
    let deployments: DeploymentTable
    let invocations: InvocationHandler
    let ledger: HostLedger
    let reporter: HostStatusReporter
    let trustedCallers: TrustedCallerList
    let ledgerHealth: LedgerHealth

    /// Answers `request`, which arrived on a connection of `eventLoop` (calls prefer workers on the same loop).
    func respond(_ request: HostRequest, writer: HostResponseWriter, eventLoop: any EventLoop) async throws {
        let path = request.uri.path
        if path.hasPrefix("/_verge/") {
            try await platform(request, path: path, writer: writer)
            return
        }
        // A call the host cannot bill is not served (see `LedgerHealth`).
        if !ledgerHealth.isHealthy, await ledgerHealth.problem() != nil {
            var headers = HTTPFields()
            headers[HTTPField.Name(VergeHeaders.host)!] = configuration.name
            headers[.retryAfter] = "1"
            writer.writeError(
                VergeError(.ledgerUnavailable, "this host cannot record usage right now; retry on another host"),
                fields: headers)
            return
        }
        // The gateway's headers from a caller this host does not recognise as the gateway (a replayed proof, a
        // gateway this host has not learnt yet or no longer trusts, a client): refused, never served as the default
        // tenant's. The gateway tries another host; a client calling the host directly learns what is wrong.
        let caller = caller(request)
        if caller != .gateway, Self.carriesGatewayFields(request) {
            var headers = HTTPFields()
            headers[HTTPField.Name(VergeHeaders.host)!] = configuration.name
            headers[HTTPField.Name(VergeHeaders.rejected)!] = VergeError.Code.untrustedCaller.rawValue
            writer.writeError(
                VergeError(
                    .untrustedCaller,
                    "this host does not recognise the caller as the gateway (no proof for '\(configuration.name)' it "
                        + "was told about); call through the gateway, or send no x-verge-* headers"),
                fields: headers)
            return
        }
        let name =
            path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true).first.map(String.init) ?? ""
        guard FunctionName.isValid(name),
            let pool = deployments.pool(for: FunctionKey(tenant: tenant(request, caller: caller), name: name))
        else {
            var headers = HTTPFields()
            headers[HTTPField.Name(VergeHeaders.host)!] = configuration.name
            writer.writeError(VergeError(.functionNotFound, "no function is deployed at '/\(name)'"), fields: headers)
            return
        }
        let key = pool.deployment.key
        try await invocations.handle(
            request, writer: writer, pool: pool, eventLoop: eventLoop, client: clientLocation(request, caller: caller),
            current: { [deployments] in deployments.pool(for: key) }
        )
    }

    /// The fields only the gateway may send: its proof, the tenant, the client's location.
    static let gatewayFields: [String] = [
        VergeHeaders.credential, VergeHeaders.tenant, VergeHeaders.clientLatitude, VergeHeaders.clientLongitude,
        VergeHeaders.clientSource, VergeHeaders.clientCountry, VergeHeaders.clientAddress,
    ]

    /// Whether a call carries any field only the gateway may send.
    static func carriesGatewayFields(_ request: HostRequest) -> Bool {
        gatewayFields.contains { request.head.headers.contains(name: $0) }
    }

    /// The tenant of a call: named by the gateway (`x-verge-tenant`, believed only from a caller that presented
    /// the gateway's proof for this host), otherwise the default tenant. A named tenant that is not a valid name is
    /// never served as the default tenant's: it names no function (404).
    func tenant(_ request: HostRequest, caller: TrustedCaller.Role?) -> String {
        guard let named = request.header(VergeHeaders.tenant), caller == .gateway else {
            return defaultTenant
        }
        return TenantName.isValid(named) ? named : ""
    }

    /// The client's location as the gateway resolved it; only believed from a caller that presented the gateway's
    /// proof for this host.
    func clientLocation(_ request: HostRequest, caller: TrustedCaller.Role?) -> ClientLocation? {
        guard caller == .gateway,
            let latitude = request.header(VergeHeaders.clientLatitude).flatMap(Double.init),
            let longitude = request.header(VergeHeaders.clientLongitude).flatMap(Double.init),
            let point = GeoPoint(latitude: latitude, longitude: longitude)
        else { return nil }
        let source = request.header(VergeHeaders.clientSource) ?? "gateway"
        // The gateway is trusted, but its headers are still checked: two letters, an address literal's characters.
        let country = request.header(VergeHeaders.clientCountry).flatMap { code in
            code.utf8.count == 2 && code.utf8.allSatisfy { (65...90).contains($0) } ? code : nil
        }
        let address = request.header(VergeHeaders.clientAddress).flatMap { text in
            (2...45).contains(text.utf8.count)
                && text.utf8.allSatisfy { (48...58).contains($0) || (97...102).contains($0) || $0 == 46 } ? text : nil
        }
        let distance = (point.distanceKm(to: configuration.location) * 10).rounded() / 10
        return ClientLocation(
            latitude: point.latitude, longitude: point.longitude, source: String(source.prefix(32)), country: country,
            address: address, distanceKm: distance)
    }

    /// The role of the cluster credential the request presents, if any.
    func caller(_ request: HostRequest) -> TrustedCaller.Role? {
        trustedCallers.role(of: request.header(VergeHeaders.credential))
    }

    private func platform(_ request: HostRequest, path: String, writer: HostResponseWriter) async throws {
        switch path {
        case "/_verge/health":
            if await ledgerHealth.problem() != nil {
                // The gateway routes away from a host whose health check is not 200. The database's error is in
                // the host's log, not here: this endpoint answers anyone.
                try writer.writeJSON(
                    ["status": "unhealthy", "host": configuration.name, "reason": "usage ledger cannot commit"],
                    status: 503)
            } else {
                try writer.writeJSON(["status": "ok", "host": configuration.name])
            }
        case "/_verge/status" where caller(request) != nil:
            try writer.writeJSON(await reporter.status())
        case "/_verge/logs" where caller(request) == .controlPlane:
            let query = request.uri.queryParameters
            let tenant = query["tenant"].map(String.init) ?? defaultTenant
            guard let function = query["function"].map(String.init), FunctionName.isValid(function),
                TenantName.isValid(tenant)
            else {
                writer.writeError(
                    VergeError(.badRequest, "query parameters 'function' and 'tenant' must be valid names"))
                return
            }
            let limit = min(max(query["limit"].flatMap { Int(String($0)) } ?? 100, 1), 1000)
            let lines = try await ledger.logs(
                tenant: tenant, function: function,
                invocationID: query["invocation"].map(String.init), limit: limit
            )
            try writer.writeJSON(lines)
        case "/_verge/status", "/_verge/logs":
            writer.writeError(
                VergeError(.unauthorized, "this endpoint needs the gateway's or the control plane's credential"))
        default:
            writer.writeError(VergeError(.notFound, "no such endpoint '\(path)'"))
        }
    }
}

/// Builds the host's status report.
struct HostStatusReporter: Sendable {
    let configuration: HostConfiguration
    let deployments: DeploymentTable
    let ledger: HostLedger
    let listenAddress: ListenAddress
    let trustedCallers: TrustedCallerList

    /// The URL others reach the host at: the configured one, or the listen address.
    func advertisedURL() async -> String {
        if let url = configuration.advertiseURL { return url }
        return await listenAddress.url()
    }

    func status() async -> HostStatus {
        let functions = deployments.all.map { pool in
            let stats = pool.stats
            return HostStatus.FunctionStatus(
                tenant: pool.deployment.tenant, name: pool.deployment.name, version: pool.deployment.version,
                warmWorkers: stats.live, idleWorkers: stats.idle, busyWorkers: stats.busy, queuedCalls: stats.queued,
                workerPIDs: pool.workerPIDs,
                regions: pool.deployment.manifest.regions.isEmpty ? nil : pool.deployment.manifest.regions,
                idempotentMethods: pool.deployment.manifest.idempotentMethods.isEmpty
                    ? nil : pool.deployment.manifest.idempotentMethods
            )
        }
        let unshipped = (try? await ledger.unshippedCount()) ?? 0
        return HostStatus(
            name: configuration.name, url: await advertisedURL(), location: configuration.location,
            warmWorkers: functions.reduce(0) { $0 + $1.warmWorkers }, functions: functions,
            unshippedRecords: unshipped, isolation: configuration.isolationSettings.level,
            trustedGateways: trustedCallers.gatewayIDs
        )
    }
}
