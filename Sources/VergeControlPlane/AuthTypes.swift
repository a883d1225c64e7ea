import VergeCore

// The control plane API's tenant and token messages, shared with the CLI.

/// A tenant: the unit that owns functions, tokens, logs and usage.
public struct TenantSummary: Codable, Sendable, Equatable {
    public var name: String
    public var createdAtMs: Int64

    enum CodingKeys: String, CodingKey {
        case name
        case createdAtMs = "created_at_ms"
    }
}

/// A credential as listed: never its secret.
public struct TokenSummary: Codable, Sendable, Equatable {
    public var id: String
    /// `api`, `host`, `gw` (gateway) or `join`.
    public var kind: String
    public var tenant: String
    /// API tokens: their scopes. Join tokens: the role they grant (`host` or `gateway`).
    public var scopes: [String]
    /// Host credentials: the host's name. Otherwise a free-form description.
    public var subject: String?
    public var createdAtMs: Int64
    public var expiresAtMs: Int64?
    public var revoked: Bool

    enum CodingKeys: String, CodingKey {
        case id, kind, tenant, scopes, subject, revoked
        case createdAtMs = "created_at_ms"
        case expiresAtMs = "expires_at_ms"
    }
}

/// `POST /v1/tenants`.
public struct CreateTenantRequest: Codable, Sendable {
    public var name: String

    public init(name: String) { self.name = name }
}

/// `POST /v1/tokens`.
public struct CreateTokenRequest: Codable, Sendable {
    public var tenant: String
    public var scopes: [String]
    /// Lifetime in seconds; none means the token does not expire.
    public var expiresInS: Int64?
    public var description: String?

    enum CodingKeys: String, CodingKey {
        case tenant, scopes, description
        case expiresInS = "expires_in_s"
    }

    public init(tenant: String, scopes: [String], expiresInS: Int64?, description: String?) {
        self.tenant = tenant
        self.scopes = scopes
        self.expiresInS = expiresInS
        self.description = description
    }
}

/// `POST /v1/join-tokens`.
public struct CreateJoinTokenRequest: Codable, Sendable {
    public var role: JoinRequest.Role
    /// Lifetime in seconds. Default 3600.
    public var expiresInS: Int64?

    enum CodingKeys: String, CodingKey {
        case role
        case expiresInS = "expires_in_s"
    }

    public init(role: JoinRequest.Role, expiresInS: Int64?) {
        self.role = role
        self.expiresInS = expiresInS
    }
}

/// A credential just created: `token` is shown this once and stored nowhere.
public struct CreatedToken: Codable, Sendable {
    public var token: String
    public var summary: TokenSummary
}
