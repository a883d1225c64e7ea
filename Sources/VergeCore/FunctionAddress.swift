/// Which tenant's function a call to the gateway is for, and the path the host is asked for. The one place that
/// parses function addresses:
///
/// - `Host: FUNCTION.TENANT.DOMAIN` → that tenant's function; the host is asked for `/FUNCTION` + the path.
/// - `Host: FUNCTION.DOMAIN` → the default tenant's function, likewise.
/// - any other host name, path `/FUNCTION/…` → the default tenant's function, path unchanged.
///
/// The gateway forwards the tenant to the host in `x-verge-tenant` with its own credential; hosts believe the
/// header only with that credential and otherwise serve the default tenant.
public struct FunctionAddress: Sendable, Equatable {
    public var tenant: String
    public var name: String
    /// The path to ask the host for: always `/FUNCTION…`.
    public var hostPath: String

    public init(tenant: String, name: String, hostPath: String) {
        self.tenant = tenant
        self.name = name
        self.hostPath = hostPath
    }

    /// Resolves a call by its `Host` header (`authority`, port allowed) and path; `nil` when it names no valid
    /// function.
    public static func resolve(authority: String?, path: String, domain: String) -> FunctionAddress? {
        let path = path.isEmpty ? "/" : path
        if let authority, let labels = subdomainLabels(authority, domain: domain) {
            let (name, tenant) = labels.count == 2 ? (labels[0], labels[1]) : (labels[0], defaultTenant)
            guard labels.count <= 2, FunctionName.isValid(name), TenantName.isValid(tenant) else { return nil }
            return FunctionAddress(tenant: tenant, name: name, hostPath: "/" + name + (path == "/" ? "" : path))
        }
        let name =
            path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true).first.map(String.init) ?? ""
        guard FunctionName.isValid(name) else { return nil }
        return FunctionAddress(tenant: defaultTenant, name: name, hostPath: path)
    }

    /// The labels of `authority` in front of `.domain` (case-insensitive, port ignored), or `nil` when it is not a
    /// subdomain of `domain`.
    static func subdomainLabels(_ authority: String, domain: String) -> [String]? {
        var host = Substring(authority.lowercased())
        if host.hasPrefix("[") { return nil }  // an IPv6 literal is never a function's name
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        if host.hasSuffix(".") { host = host.dropLast() }
        let suffix = "." + domain.lowercased()
        guard !domain.isEmpty, host.hasSuffix(suffix), host.count > suffix.count else { return nil }
        return host.dropLast(suffix.count).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    }
}
