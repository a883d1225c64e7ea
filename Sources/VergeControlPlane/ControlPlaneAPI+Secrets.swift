import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VergeBundle
import VergeCore
import VergeHTTP

/// Secrets: developers set, list (names only) and delete them with the `deploy` scope of their tenant; hosts fetch
/// the values of the functions they run with their own credential. No answer, log line or error carries a value.
extension ControlPlaneAPI {
    func registerSecrets(on router: Router<VergeRequestContext>) {
        router.put("/v1/functions/:name/secrets/:secret") { request, context in
            try await setSecret(request, context)
        }
        router.get("/v1/functions/:name/secrets") { request, context in
            let tenant = try await authorize(request, .scope(.deploy)).tenant
            let name = try functionName(context)
            return try Response.json(try await store.secretNames(tenant: tenant, function: name))
        }
        router.delete("/v1/functions/:name/secrets/:secret") { request, context in
            let tenant = try await authorize(request, .scope(.deploy)).tenant
            let function = try functionName(context)
            let secret = try secretName(context)
            guard try await store.deleteSecret(tenant: tenant, function: function, name: secret) else {
                throw VergeError(.notFound, "function '\(function)' has no secret named '\(secret)'")
            }
            return try Response.json(["deleted": secret])
        }
        router.get("/v1/internal/hosts/:host/secrets/:name") { request, context in
            try await deliverSecrets(request, context)
        }
    }

    private func setSecret(_ request: Request, _ context: VergeRequestContext) async throws -> Response {
        let tenant = try await authorize(request, .scope(.deploy)).tenant
        let function = try functionName(context)
        let name = try secretName(context)
        let limit = Manifest.maxEnvironmentValueBytes
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch {
            throw VergeError(.payloadTooLarge, "a secret's value is at most \(limit) bytes")
        }
        guard body.readableBytes > 0 else {
            throw VergeError(.badRequest, "the secret's value is empty; send it as the request body")
        }
        guard let value = String(validating: body.readableBytesView, as: UTF8.self), !value.utf8.contains(0) else {
            throw VergeError(.badRequest, "a secret's value must be UTF-8 text without NUL characters")
        }
        let sealed = try controlPlane.secrets.seal(
            value, for: SecretBox.Binding(tenant: tenant, function: function, name: name))
        let summary = try await store.setSecret(
            tenant: tenant, function: function, name: name, sealed: sealed, limit: Manifest.maxEnvironmentCount)
        return try Response.json(summary)
    }

    /// The values of a function's secrets, for a host of the cluster, and only for a function it is told to run
    /// (live, and placed on that host by its manifest's `regions`).
    private func deliverSecrets(_ request: Request, _ context: VergeRequestContext) async throws -> Response {
        let principal = try await authorize(request, .host)
        let host = try context.parameters.require("host")
        guard host == principal.hostName else {
            throw VergeError(.forbidden, "a host may only fetch secrets as itself")
        }
        let function = try functionName(context)
        let tenant = request.uri.queryParameters["tenant"].map(String.init) ?? defaultTenant
        guard HostName.isValid(host) else { throw VergeError(.badRequest, "invalid host name") }
        guard try await store.isPlaced(tenant: tenant, function: function, on: host) else {
            throw VergeError(
                .notFound,
                "function '\(function)' is not deployed on host '\(host)'; hosts get secrets of the live functions "
                    + "they run only")
        }
        let (version, sealed) = try await store.sealedSecrets(tenant: tenant, function: function)
        var values: [String: String] = [:]
        for (name, blob) in sealed {
            values[name] = try controlPlane.secrets.open(
                blob, for: SecretBox.Binding(tenant: tenant, function: function, name: name))
        }
        var response = try Response.json(FunctionSecrets(version: version, values: values))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// The desired state with each function's secrets version, so hosts notice a set or a delete.
    func withSecretsVersions(_ desired: DesiredState) async throws -> DesiredState {
        let versions = try await store.secretsVersions()
        var desired = desired
        for index in desired.functions.indices {
            let function = desired.functions[index]
            desired.functions[index].secretsVersion =
                versions[
                    SecretOwner(tenant: function.tenant, function: function.name)]
        }
        return desired
    }

    private func secretName(_ context: VergeRequestContext) throws -> String {
        let name = try context.parameters.require("secret")
        if let problem = Manifest.environmentNameProblem(name) {
            throw VergeError(.badRequest, "invalid secret name: \(problem)")
        }
        return name
    }
}
