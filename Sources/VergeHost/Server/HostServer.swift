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

    func respond(_ request: Request, writer: consuming ResponseWriter) async throws {
        let path = request.uri.path
        if path.hasPrefix("/_verge/") {
            try await platform(request, path: path, writer: writer)
            return
        }
        let name =
            path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true).first.map(String.init) ?? ""
        guard FunctionName.isValid(name),
            let pool = deployments.pool(for: FunctionKey(tenant: defaultTenant, name: name))
        else {
            var headers = HTTPFields()
            headers[HTTPField.Name(VergeHeaders.host)!] = configuration.name
            try await writer.writeError(
                VergeError(.functionNotFound, "no function is deployed at '/\(name)'"), headers: headers
            )
            return
        }
        let key = pool.deployment.key
        try await invocations.handle(
            request, writer: writer, pool: pool, client: clientLocation(request),
            current: { [deployments] in deployments.pool(for: key) }
        )
    }

    /// The client's location as the gateway resolved it; only believed from a caller holding the cluster key.
    func clientLocation(_ request: Request) -> ClientLocation? {
        guard isCluster(request),
            let latitude = request.headers[HTTPField.Name(VergeHeaders.clientLatitude)!].flatMap(Double.init),
            let longitude = request.headers[HTTPField.Name(VergeHeaders.clientLongitude)!].flatMap(Double.init),
            let point = GeoPoint(latitude: latitude, longitude: longitude)
        else { return nil }
        let source = request.headers[HTTPField.Name(VergeHeaders.clientSource)!] ?? "gateway"
        return ClientLocation(latitude: point.latitude, longitude: point.longitude, source: String(source.prefix(32)))
    }

    func isCluster(_ request: Request) -> Bool {
        guard let key = configuration.clusterKey else { return false }
        return ClusterKey.matches(request.headers[HTTPField.Name(VergeHeaders.clusterKey)!], key)
    }

    private func platform(_ request: Request, path: String, writer: consuming ResponseWriter) async throws {
        switch path {
        case "/_verge/health":
            try await writer.writeJSON(["status": "ok", "host": configuration.name])
        case "/_verge/status" where isCluster(request):
            try await writer.writeJSON(await reporter.status())
        case "/_verge/logs" where isCluster(request):
            let query = request.uri.queryParameters
            guard let function = query["function"].map(String.init), FunctionName.isValid(function) else {
                try await writer.writeError(VergeError(.badRequest, "query parameter 'function' is required"))
                return
            }
            let limit = min(max(query["limit"].flatMap { Int(String($0)) } ?? 100, 1), 1000)
            let lines = try await ledger.logs(
                tenant: query["tenant"].map(String.init) ?? defaultTenant, function: function,
                invocationID: query["invocation"].map(String.init), limit: limit
            )
            try await writer.writeJSON(lines)
        case "/_verge/status", "/_verge/logs":
            try await writer.writeError(VergeError(.unauthorized, "this endpoint needs the cluster key"))
        default:
            try await writer.writeError(VergeError(.notFound, "no such endpoint '\(path)'"))
        }
    }
}

/// Builds the host's status report.
struct HostStatusReporter: Sendable {
    let configuration: HostConfiguration
    let deployments: DeploymentTable
    let ledger: HostLedger
    let listenAddress: ListenAddress

    func status() async -> HostStatus {
        let functions = deployments.all.map { pool in
            let stats = pool.stats
            return HostStatus.FunctionStatus(
                tenant: pool.deployment.tenant, name: pool.deployment.name, version: pool.deployment.version,
                warmWorkers: stats.live, idleWorkers: stats.idle, busyWorkers: stats.busy, queuedCalls: stats.queued,
                workerPIDs: pool.workerPIDs
            )
        }
        let unshipped = (try? await ledger.unshippedCount()) ?? 0
        return HostStatus(
            name: configuration.name, url: await listenAddress.url(), location: configuration.location,
            warmWorkers: functions.reduce(0) { $0 + $1.warmWorkers }, functions: functions,
            unshippedRecords: unshipped
        )
    }
}
