import HTTPTypes
import Hummingbird
import VergeCore

extension ControlPlaneAPI {
    /// The one authorization check of the API: every route but `/v1/health` calls it first.
    ///
    /// - A missing, malformed, unknown, revoked or expired credential is `401 unauthorized`; an unknown, a revoked
    ///   and an expired one get the same message, so a caller learns nothing about which.
    /// - A valid credential without the permission is `403 forbidden`.
    /// - The principal's tenant is the only tenant a route may act for (admins may name another where a route
    ///   says so); another tenant's function is then simply not found, the same 404 as a name that does not exist.
    func authorize(_ request: Request, _ permission: Permission) async throws -> Principal {
        guard let credential = Credential.bearer(request.headers[.authorization]) else {
            throw VergeError(
                .unauthorized,
                "missing or malformed credential: send Authorization: Bearer verge_… (see `verge tokens`)")
        }
        guard credential.kind != .join, let stored = try await store.verify(credential) else {
            throw VergeError(.unauthorized, "unknown, revoked or expired credential")
        }
        let principal: Principal
        switch stored.kind {
        case .api:
            let scopes = Set(stored.scopes.compactMap(Scope.init(rawValue:)))
            principal = Principal(role: .user(scopes: scopes), tenant: stored.tenant, credentialID: stored.id)
        case .host:
            guard let name = stored.subject else { throw VergeError(.unauthorized, "host credential without a name") }
            principal = Principal(role: .host(name: name), tenant: defaultTenant, credentialID: stored.id)
        case .gateway:
            principal = Principal(role: .gateway, tenant: defaultTenant, credentialID: stored.id)
        case .join, .controlPlane, .hostProof, .controlPlaneProof:
            throw VergeError(.unauthorized, "unknown, revoked or expired credential")
        }
        switch (permission, principal.role) {
        case (.scope(let needed), .user(let scopes)) where scopes.contains(needed) || scopes.contains(.admin):
            return principal
        case (.host, .host), (.routing, .gateway), (.gateway, .gateway):
            return principal
        case (.routing, .user) where principal.isAdmin:
            return principal
        case (.scope(let needed), _):
            throw VergeError(.forbidden, "this credential lacks the '\(needed.rawValue)' scope")
        case (.host, _):
            throw VergeError(.forbidden, "this endpoint is for the cluster's own hosts")
        case (.routing, _):
            throw VergeError(.forbidden, "this endpoint needs the gateway's credential or the 'admin' scope")
        case (.gateway, _):
            throw VergeError(.forbidden, "this endpoint needs a gateway's own credential")
        }
    }
}
