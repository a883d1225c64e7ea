import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VergeBundle
import VergeCore
import VergeHTTP
import VergeUsage

/// The routes of the control plane's HTTP API (see `docs/api.md`).
struct ControlPlaneAPI: Sendable {
    let controlPlane: ControlPlane
    let metricsText: @Sendable () -> String

    var store: ControlPlaneStore { controlPlane.store }
    var configuration: ControlPlaneConfiguration { controlPlane.configuration }

    func register(on router: Router<VergeRequestContext>) {
        router.get("/v1/health") { _, _ in try Response.json(["status": "ok"]) }
        registerCredentialRoutes(on: router)
        router.get("/metrics") { request, _ in
            _ = try await authorize(request, .admin)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: metricsText()))
            )
        }

        // Developers: functions, versions, rollback, logs, usage.
        router.post("/v1/functions/:name/versions") { request, context in try await upload(request, context) }
        router.get("/v1/functions") { request, _ in
            let principal = try await authorize(request, .deploy)
            return try Response.json(try await store.functions(tenant: principal.tenant))
        }
        router.get("/v1/functions/:name") { request, context in try await function(request, context) }
        router.get("/v1/functions/:name/versions") { request, context in
            let tenant = try await authorize(request, .deploy).tenant
            let name = try functionName(context)
            let versions = try await store.versions(tenant: tenant, name: name)
            guard !versions.isEmpty else { throw VergeError(.functionNotFound, "no function named '\(name)'") }
            return try Response.json(versions)
        }
        router.post("/v1/functions/:name/rollback") { request, context in try await rollback(request, context) }
        router.delete("/v1/functions/:name") { request, context in
            let tenant = try await authorize(request, .deploy).tenant
            let name = try functionName(context)
            guard try await store.deleteFunction(tenant: tenant, name: name) else {
                throw VergeError(.functionNotFound, "no function named '\(name)'")
            }
            return try Response.json(["deleted": name])
        }
        router.get("/v1/functions/:name/logs") { request, context in try await logs(request, context) }
        router.get("/v1/hosts") { request, _ in
            _ = try await authorize(request, .routing)
            return try Response.json(try await store.hosts(livenessWindow: configuration.hostLivenessWindow))
        }
        router.get("/v1/usage") { request, _ in
            let principal = try await authorize(request, .usageRead)
            let query = request.uri.queryParameters
            let after = try integer(query["after"], name: "after", default: 0, range: 0...Int64.max)
            let limit = try integer(
                query["limit"], name: "limit", default: 1000, range: 1...Int64(UsageStore.maximumPageSize))
            let function = query["function"].map(String.init)
            // A tenant's token reads its own tenant's records; an admin token reads every tenant's (or one, named).
            let tenant = principal.isAdmin ? query["tenant"].map(String.init) : principal.tenant
            let page = try await store.usage.page(after: after, limit: Int(limit), tenant: tenant, function: function)
            return try Response.json(page)
        }
        router.get("/v1/usage/summary") { request, _ in
            let principal = try await authorize(request, .usageRead)
            let query = request.uri.queryParameters
            guard let from = query["from"], let to = query["to"] else {
                throw VergeError(.badRequest, "'from' and 'to' are required (RFC 3339 times or microseconds)")
            }
            let tenant = principal.isAdmin ? query["tenant"].map(String.init) : principal.tenant
            let summary = try await store.usage.summary(
                UsageSummaryQuery(
                    fromUs: try UsageSummaryQuery.parseTime(String(from), name: "from"),
                    toUs: try UsageSummaryQuery.parseTime(String(to), name: "to"),
                    groupBy: try UsageSummaryQuery.parseGroupBy(query["group_by"].map(String.init)),
                    tenant: tenant))
            return try Response.json(summary)
        }

        // Hosts: sync, bundles, usage shipping. Each host presents its own credential, bound to its name.
        router.post("/v1/internal/hosts/:host/sync") { request, context in
            let principal = try await authorize(request, .host)
            let name = try context.parameters.require("host")
            var request = request
            let body = try await request.collectBody(upTo: 4 * 1024 * 1024)
            let status = try JSONCoding.decode(HostStatus.self, from: body, what: "host status")
            guard status.name == name, HostName.isValid(name) else {
                throw VergeError(.badRequest, "host name in the path and the body differ or are invalid")
            }
            guard principal.hostName == name else {
                throw VergeError(.forbidden, "this credential belongs to host '\(principal.hostName ?? "")', not '\(name)'")
            }
            // Bound by the place it reaches, not its spelling: `http://A:1/` and `http://localhost:1` are not new URLs.
            let place = try HostAddress.bindingKey(status.url)
            try await store.bindHostURL(credentialID: principal.credentialID, url: place)
            try await store.recordHost(status)
            return try Response.json(
                try await withSecretsVersions(
                    try await store.desiredState(for: name, trustedCallers: try await trustedCallers(for: name))))
        }
        router.post("/v1/internal/usage") { request, _ in
            let principal = try await authorize(request, .host)
            var request = request
            let body = try await request.collectBody(upTo: 64 * 1024 * 1024)
            // The shipping format's own strict decoder (Foundation's JSONDecoder cost more than storing the batch).
            let batch = try body.withUnsafeReadableBytes { bytes throws(VergeError) in
                try UsageBatchDecoder.decode(bytes)
            }
            guard batch.host == principal.hostName, batch.records.allSatisfy({ $0.host == batch.host }) else {
                throw VergeError(.forbidden, "a host may only ship its own records")
            }
            let result = try await store.usage.ingest(batch.records)
            return try Response.json(result)
        }
        registerHostProofs(on: router)
        registerSecrets(on: router)
        router.get("/v1/bundles/:version") { request, context in
            let host = try await authorize(request, .host).hostName
            let version = try context.parameters.require("version")
            // A host gets only what its sync answer lists: the live version of a function placed on it. Any other
            // version (not live, or pinned to regions the host is not in) answers exactly as an unknown one.
            guard version.utf8.count == 64,
                version.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
                let host, try await store.isPlaced(version: version, on: host),
                let data = controlPlane.bundles.read(version)
            else { throw VergeError(.notFound, "no bundle \(version)") }
            return Response(
                status: .ok, headers: [.contentType: "application/zip"], body: BundleStore.streamed(data))
        }
    }

    // MARK: Handlers

    private func upload(_ request: Request, _ context: VergeRequestContext) async throws -> Response {
        let tenant = try await authorize(request, .deploy).tenant
        let name = try functionName(context)
        let limit = configuration.bundleLimits.maxArchiveBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw VergeError(.payloadTooLarge, "bundle is \(length) bytes; the limit is \(limit)")
        }
        // Streamed to a file and checked there: no whole-bundle copy in memory.
        let upload = try await controlPlane.bundles.receive(request.body, limit: limit)
        do {
            let manifest = try BundleArchive.inspect(fileAt: upload.path, limits: configuration.bundleLimits)
            guard manifest.name == name else {
                throw VergeError(
                    .invalidBundle, "verge.json names the function '\(manifest.name)' but it was uploaded as '\(name)'")
            }
            try controlPlane.bundles.commit(upload)
            let activate = request.uri.queryParameters["activate"].map { $0 != "false" } ?? true
            let summary = try await store.addVersion(
                tenant: tenant, manifest: manifest, version: upload.version, size: upload.size, activate: activate
            )
            return try Response.json(summary, status: .created)
        } catch {
            controlPlane.bundles.discard(upload)
            throw error
        }
    }

    private func function(_ request: Request, _ context: VergeRequestContext) async throws -> Response {
        let tenant = try await authorize(request, .deploy).tenant
        let name = try functionName(context)
        guard let function = try await store.function(tenant: tenant, name: name) else {
            throw VergeError(.functionNotFound, "no function named '\(name)'")
        }
        let hosts = try await store.hosts(livenessWindow: configuration.hostLivenessWindow)
        let rollout = hosts.map { host in
            let status = host.functions.first { $0.tenant == tenant && $0.name == name }
            return FunctionDetail.HostRollout(
                host: host.name, healthy: host.healthy, version: status?.version,
                live: status?.version == function.liveVersion, warmWorkers: status?.warmWorkers ?? 0
            )
        }
        let healthy = rollout.filter(\.healthy)
        return try Response.json(
            FunctionDetail(
                function: function, versions: try await store.versions(tenant: tenant, name: name), hosts: rollout,
                liveEverywhere: !healthy.isEmpty && healthy.allSatisfy(\.live)
            ))
    }

    struct RollbackRequest: Codable {
        /// The version (full hash, a unique prefix, or its number) to make live; default: the one before the live one.
        var version: String?
    }

    private func rollback(_ request: Request, _ context: VergeRequestContext) async throws -> Response {
        let tenant = try await authorize(request, .deploy).tenant
        let name = try functionName(context)
        var request = request
        let body = try await request.collectBody(upTo: 64 * 1024)
        let wanted =
            body.readableBytes == 0
            ? nil : try JSONCoding.decode(RollbackRequest.self, from: body, what: "rollback request").version
        let versions = try await store.versions(tenant: tenant, name: name)
        guard let live = versions.first(where: \.live) else {
            throw VergeError(.functionNotFound, "no function named '\(name)'")
        }
        let target: VersionSummary
        if let wanted {
            // A version number wins over a hash prefix that happens to be made of the same digits.
            let byNumber = versions.filter { String($0.number) == wanted }
            let matches = byNumber.isEmpty ? versions.filter { $0.version.hasPrefix(wanted) } : byNumber
            guard matches.count == 1 else {
                throw VergeError(
                    matches.isEmpty ? .notFound : .badRequest,
                    matches.isEmpty
                        ? "function '\(name)' has no version '\(wanted)'"
                        : "'\(wanted)' matches several versions; give more of the hash")
            }
            target = matches[0]
        } else {
            guard let previous = versions.first(where: { $0.number < live.number }) else {
                throw VergeError(.badRequest, "function '\(name)' has no version before \(live.number) to roll back to")
            }
            target = previous
        }
        guard let summary = try await store.setLive(tenant: tenant, name: name, version: target.version) else {
            throw VergeError(.functionNotFound, "no function named '\(name)'")
        }
        return try Response.json(summary)
    }

    private func logs(_ request: Request, _ context: VergeRequestContext) async throws -> Response {
        let tenant = try await authorize(request, .logsRead).tenant
        let name = try functionName(context)
        // A function this tenant never had is not found, whoever else may have one of that name.
        guard try await !store.versions(tenant: tenant, name: name).isEmpty else {
            throw VergeError(.functionNotFound, "no function named '\(name)'")
        }
        let query = request.uri.queryParameters
        let limit = try integer(query["limit"], name: "limit", default: 100, range: 1...Int64(LogQueries.maxLines))
        guard controlPlane.logQueries.enter() else {
            throw VergeError(.overloaded, "\(LogQueries.maxConcurrent) log queries are running; retry in a moment")
        }
        defer { controlPlane.logQueries.leave() }
        var path = "/_verge/logs?tenant=\(tenant)&function=\(name)&limit=\(limit)"
        if let invocation = query["invocation"] {
            guard invocation.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
                invocation.count <= 64
            else {
                throw VergeError(.badRequest, "'invocation' must be an invocation id")
            }
            path += "&invocation=\(invocation)"
        }
        let hosts = try await store.hosts(livenessWindow: configuration.hostLivenessWindow).filter(\.healthy)
        let peer = controlPlane.peerCredential
        let lines = await withTaskGroup(of: [LogLine].self) { group in
            for host in hosts {
                // Each host gets the proof made for it alone (a host cannot replay it to another).
                let proof = peer.hostProof(for: host.name)!.token
                group.addTask { [path] in
                    var request = HTTPClientRequest(url: host.url + path)
                    request.headers.add(name: VergeHeaders.credential, value: proof)
                    guard let response = try? await HTTPClient.verge.execute(request, timeout: .seconds(5)),
                        response.status == .ok,
                        let body = try? await response.body.collect(upTo: LogQueries.maxBytesPerHost),
                        let lines = try? JSONCoding.decoder.decode([LogLine].self, from: Data(body.readableBytesView))
                    else { return [] }
                    return lines
                }
            }
            var all: [LogLine] = []
            for await lines in group { all.append(contentsOf: lines) }
            return all
        }
        let newest = lines.sorted { $0.timeUs < $1.timeUs }.suffix(Int(limit))
        return try Response.json(Array(newest))
    }

    // MARK: Helpers

    /// Who may call `host`'s platform endpoints and vouch for forwarded calls: the live gateways' proofs made for
    /// that host and this control plane's proof for it (never another host's proof, never a credential itself).
    private func trustedCallers(for host: String) async throws -> [TrustedCaller] {
        try await store.hostProofs(for: host)
            + [TrustedCaller(hash: controlPlane.peerCredential.hostProof(for: host)!.hash, role: .controlPlane)]
    }

    func functionName(_ context: VergeRequestContext) throws -> String {
        let name = try context.parameters.require("name")
        guard FunctionName.isValid(name) else {
            throw VergeError(
                .badRequest, "'\(name)' is not a valid function name (a-z, 0-9 and '-', starting with a letter)")
        }
        return name
    }

    private func integer(
        _ text: Substring?, name: String, default value: Int64, range: ClosedRange<Int64>
    ) throws(VergeError) -> Int64 {
        guard let text else { return value }
        guard let parsed = Int64(text), range.contains(parsed) else {
            throw VergeError(
                .badRequest, "'\(name)' must be an integer between \(range.lowerBound) and \(range.upperBound)")
        }
        return parsed
    }
}
