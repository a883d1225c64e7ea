import Foundation
import HTTPTypes
import Hummingbird
import VergeCore
import VergeHTTP

/// Tenants, API tokens, join tokens and joining: `docs/api.md`, "Tenants and credentials".
extension ControlPlaneAPI {
    func registerCredentialRoutes(on router: Router<VergeRequestContext>) {
        router.post("/v1/tenants") { request, _ in
            _ = try await authorize(request, .admin)
            let body = try await Self.body(request, CreateTenantRequest.self, what: "tenant")
            return try Response.json(try await store.createTenant(body.name), status: .created)
        }
        router.get("/v1/tenants") { request, _ in
            _ = try await authorize(request, .admin)
            return try Response.json(try await store.tenants())
        }
        router.post("/v1/tokens") { request, _ in
            _ = try await authorize(request, .admin)
            let body = try await Self.body(request, CreateTokenRequest.self, what: "token request")
            guard !body.scopes.isEmpty else {
                throw VergeError(.badRequest, "a token needs at least one scope (\(Self.scopeList))")
            }
            let scopes = try body.scopes.map { name throws(VergeError) -> Scope in
                guard let scope = Scope(rawValue: name) else {
                    throw VergeError(.badRequest, "unknown scope '\(name)' (scopes: \(Self.scopeList))")
                }
                return scope
            }
            // `admin` reaches every tenant, so only the operator's own (default) tenant may hold it.
            guard !scopes.contains(.admin) || body.tenant == defaultTenant else {
                throw VergeError(
                    .badRequest,
                    "the admin scope is the operator's: only tokens of the '\(defaultTenant)' tenant may have it")
            }
            let expiresAt = try Self.expiry(body.expiresInS)
            if let description = body.description, description.count > 200 {
                throw VergeError(.badRequest, "description is longer than 200 characters")
            }
            let created = try await store.createToken(
                tenant: body.tenant, scopes: scopes, expiresAtMs: expiresAt, description: body.description)
            return try Response.json(created, status: .created)
        }
        router.get("/v1/tokens") { request, _ in
            _ = try await authorize(request, .admin)
            let tenant = request.uri.queryParameters["tenant"].map(String.init)
            return try Response.json(try await store.tokens(tenant: tenant))
        }
        router.delete("/v1/tokens/:id") { request, context in
            _ = try await authorize(request, .admin)
            let id = try context.parameters.require("id")
            guard try await store.revoke(id: id) else { throw VergeError(.notFound, "no credential with id '\(id)'") }
            return try Response.json(["revoked": id])
        }
        router.post("/v1/join-tokens") { request, _ in
            _ = try await authorize(request, .admin)
            let body = try await Self.body(request, CreateJoinTokenRequest.self, what: "join token request")
            let expiresAt = try Self.expiry(body.expiresInS ?? 3600)!
            return try Response.json(
                try await store.createJoinToken(role: body.role, expiresAtMs: expiresAt), status: .created)
        }
        // A host or gateway exchanges its one-time join token for its own credential.
        router.post("/v1/join") { request, _ in
            guard let token = Credential.bearer(request.headers[.authorization]), token.kind == .join else {
                throw VergeError(.unauthorized, "joining needs a join token: Authorization: Bearer verge_join_…")
            }
            let body = try await Self.body(request, JoinRequest.self, what: "join request")
            let credential = try await store.redeem(joinToken: token, request: body)
            return try Response.json(JoinResponse(credential: credential.token), status: .created)
        }
    }

    private static var scopeList: String { Scope.allCases.map(\.rawValue).sorted().joined(separator: ", ") }

    private static func body<T: Decodable>(_ request: Request, _ type: T.Type, what: String) async throws -> T {
        var request = request
        let body = try await request.collectBody(upTo: 64 * 1024)
        return try JSONCoding.decode(type, from: body, what: what)
    }

    /// The expiry moment of a lifetime in seconds (1 s to 10 years), or `nil` for none.
    private static func expiry(_ seconds: Int64?) throws(VergeError) -> Int64? {
        guard let seconds else { return nil }
        guard (1...315_360_000).contains(seconds) else {
            throw VergeError(.badRequest, "expires_in_s must be between 1 and 315360000")
        }
        return WallClock.milliseconds() + seconds * 1000
    }
}
