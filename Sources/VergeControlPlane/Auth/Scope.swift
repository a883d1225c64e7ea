/// What an API token may do. A token carries one or more scopes; `admin` includes every other.
public enum Scope: String, Codable, Sendable, CaseIterable, Comparable {
    /// The operator's scope: tenants and tokens of every tenant, the host list, every tenant's usage, metrics; and
    /// everything the other scopes allow in the token's own tenant.
    case admin
    /// Deploy, list, read, roll back and delete the functions of the token's tenant.
    case deploy
    /// Read the usage records of the token's tenant, and nothing else.
    case usageRead = "usage:read"
    /// Read the function logs of the token's tenant.
    case logsRead = "logs:read"

    public static func < (lhs: Scope, rhs: Scope) -> Bool { lhs.rawValue < rhs.rawValue }
}
