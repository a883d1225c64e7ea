/// Who a request to the control plane comes from, as established by ``ControlPlaneAPI/authorize(_:_:)``.
public struct Principal: Sendable, Equatable {
    public enum Role: Sendable, Equatable {
        /// An API token with its scopes.
        case user(scopes: Set<Scope>)
        /// An edge host, by the name its credential is bound to.
        case host(name: String)
        /// The gateway (routing only).
        case gateway
    }

    public var role: Role
    /// The tenant the principal acts for. Hosts and gateways belong to no tenant and carry `default`.
    public var tenant: String
    /// The credential's id (never its secret).
    public var credentialID: String

    /// Whether this is an API token with the `admin` scope.
    public var isAdmin: Bool {
        if case .user(let scopes) = role { return scopes.contains(.admin) }
        return false
    }

    /// The host name, when the principal is a host.
    public var hostName: String? {
        if case .host(let name) = role { return name }
        return nil
    }
}

/// What a route needs from its caller.
public enum Permission: Sendable, Equatable {
    /// An API token with this scope (or `admin`).
    case scope(Scope)
    /// An edge host's own credential.
    case host
    /// The gateway's credential or an admin token: the host list.
    case routing
    /// A gateway's own credential, and nothing else: registering its per-host proofs.
    case gateway

    /// An API token with this scope (or `admin`).
    public static let deploy = Permission.scope(.deploy)
    public static let logsRead = Permission.scope(.logsRead)
    public static let usageRead = Permission.scope(.usageRead)
    public static let admin = Permission.scope(.admin)
}
