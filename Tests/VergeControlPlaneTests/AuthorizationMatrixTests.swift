import Foundation
import NIOHTTP1
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeControlPlane

/// Walks every endpoint of the API with every kind of caller and checks the status and that nothing another
/// tenant owns changed. Tenant `acme` owns function `shared` (two versions), usage records and tokens; tenant
/// `globex` is the neighbour who must never see or touch any of it.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct AuthorizationMatrixTests {
    enum Caller: CustomStringConvertible {
        case none, malformed, unknown, revoked, expired
        case acme(Scope), globex(Scope), admin, host, gateway

        var description: String {
            switch self {
            case .none: "no credential"
            case .malformed: "malformed token"
            case .unknown: "well-formed unknown token"
            case .revoked: "revoked acme token"
            case .expired: "expired acme token"
            case .acme(let scope): "acme \(scope.rawValue)"
            case .globex(let scope): "globex \(scope.rawValue)"
            case .admin: "operator admin"
            case .host: "host fra"
            case .gateway: "gateway"
            }
        }

        var isInvalid: Bool {
            switch self {
            case .none, .malformed, .unknown, .revoked, .expired: true
            default: false
            }
        }

        /// Callers whose success may legitimately change acme's state.
        var actsForAcme: Bool {
            switch self {
            case .acme, .admin: true
            default: false
            }
        }
    }

    static let tenantScopes: [Scope] = [.deploy, .usageRead, .logsRead]
    /// Denied callers first, then other tenants, then the operator, then acme's own (whose calls may change state).
    static let callers: [Caller] =
        [.none, .malformed, .unknown, .revoked, .expired, .host, .gateway]
        + tenantScopes.map(Caller.globex) + [.admin] + tenantScopes.map(Caller.acme)

    struct Endpoint {
        var method: HTTPMethod
        var path: String
        var body: [UInt8]?
        /// The status each valid caller gets; invalid callers always get 401.
        var expected: (Caller) -> Int
        /// For 404 answers: the same path for a function that never existed, which must answer the same.
        var unknownNamePath: String?
    }

    /// What acme owns plus the tenants and credentials: must not change unless acme or the operator acted.
    struct Snapshot: Equatable {
        var functions: [FunctionSummary]
        var versions: [VersionSummary]
        var usage: [UsageRecord]
        var tenants: [TenantSummary]
        var tokens: [TokenSummary]
        var secrets: [SecretSummary]
    }

    func snapshot(_ harness: ControlPlaneHarness) async throws -> Snapshot {
        Snapshot(
            functions: try await harness.store.functions(tenant: "acme"),
            versions: try await harness.store.versions(tenant: "acme", name: "shared"),
            usage: try await harness.store.usage.page(after: 0, limit: 1000, tenant: "acme", function: nil).records,
            tenants: try await harness.store.tenants(),
            tokens: try await harness.store.tokens(tenant: nil),
            secrets: try await harness.store.secretNames(tenant: "acme", function: "shared"))
    }

    @Test func everyEndpointChecksCredentialScopeAndTenant() async throws {
        try await ControlPlaneHarness.with { harness in
            let store = harness.store
            _ = try await store.createTenant("acme")
            _ = try await store.createTenant("globex")
            var tokens: [String: String] = [:]
            for scope in Self.tenantScopes {
                tokens["acme \(scope.rawValue)"] = try await harness.token("acme", [scope])
                tokens["globex \(scope.rawValue)"] = try await harness.token("globex", [scope])
            }
            tokens["operator admin"] = harness.admin
            tokens["host fra"] = try harness.controlPlane.issueHostCredential(name: "fra").token
            tokens["gateway"] = try harness.controlPlane.issueGatewayCredential(label: "gw").token
            let revoked = try await store.createToken(
                tenant: "acme", scopes: [.deploy], expiresAtMs: nil, description: nil)
            #expect(try await store.revoke(id: revoked.summary.id))
            tokens["revoked acme token"] = revoked.token
            tokens["expired acme token"] = try await harness.token(
                "acme", [.deploy], expiresAtMs: WallClock.milliseconds() - 1000)
            tokens["well-formed unknown token"] = Credential.generate(.api).token
            let victim = try await store.createToken(
                tenant: "acme", scopes: [.logsRead], expiresAtMs: nil, description: nil)

            let acmeDeploy = try #require(tokens["acme deploy"])
            #expect(try await harness.upload("shared", variant: 1, token: acmeDeploy).status == 201)
            let v2 = try await harness.upload("shared", variant: 2, token: acmeDeploy)
            #expect(v2.status == 201)
            let globexDeploy = try #require(tokens["globex deploy"])
            #expect(try await harness.upload("other", variant: 1, token: globexDeploy).status == 201)
            let secret = try await harness.request(
                .PUT, "/v1/functions/shared/secrets/API_KEY", token: acmeDeploy, body: Array("acme-value".utf8))
            #expect(secret.status == 200, "\(secret.text)")
            let versions = try await store.versions(tenant: "acme", name: "shared")
            let v1Hash = try #require(versions.last?.version)
            let liveHash = try #require(versions.first(where: \.live)?.version)
            _ = try await store.usage.ingest([
                ControlPlaneHarness.usageRecord("acme-1", tenant: "acme", function: "shared", host: "fra"),
                ControlPlaneHarness.usageRecord("globex-1", tenant: "globex", function: "other", host: "fra"),
            ])

            func scoped(_ scope: Scope, _ ok: Int) -> (Caller) -> Int {
                { caller in
                    switch caller {
                    case .acme(let s) where s == scope: ok
                    case .globex(let s) where s == scope: 404
                    case .admin: 404  // the operator acts for the default tenant, which has no 'shared'
                    default: 403
                    }
                }
            }
            func only(_ allowed: [String], _ ok: Int) -> (Caller) -> Int {
                { caller in allowed.contains(caller.description) ? ok : 403 }
            }
            let usageBatch = try ControlPlaneHarness.json(
                UsageBatch(
                    host: "fra",
                    records: [ControlPlaneHarness.usageRecord("fra-new", tenant: "default", function: "x", host: "fra")]
                ))
            let endpoints: [Endpoint] = [
                Endpoint(method: .GET, path: "/v1/health", expected: { _ in 200 }),
                Endpoint(
                    method: .GET, path: "/v1/functions",
                    expected: { caller in
                        switch caller {
                        case .acme(.deploy), .globex(.deploy), .admin: 200
                        default: 403
                        }
                    }),
                Endpoint(
                    method: .GET, path: "/v1/functions/shared", expected: scoped(.deploy, 200),
                    unknownNamePath: "/v1/functions/never-existed"),
                Endpoint(
                    method: .GET, path: "/v1/functions/shared/versions", expected: scoped(.deploy, 200),
                    unknownNamePath: "/v1/functions/never-existed/versions"),
                Endpoint(
                    method: .GET, path: "/v1/functions/shared/logs", expected: scoped(.logsRead, 200),
                    unknownNamePath: "/v1/functions/never-existed/logs"),
                Endpoint(
                    method: .GET, path: "/v1/usage",
                    expected: { caller in
                        switch caller {
                        case .acme(.usageRead), .globex(.usageRead), .admin: 200
                        default: 403
                        }
                    }),
                Endpoint(
                    method: .GET, path: "/v1/usage/summary?from=0&to=9999999999999999&group_by=tenant",
                    expected: { caller in
                        switch caller {
                        case .acme(.usageRead), .globex(.usageRead), .admin: 200
                        default: 403
                        }
                    }),
                Endpoint(method: .GET, path: "/v1/hosts", expected: only(["operator admin", "gateway"], 200)),
                Endpoint(method: .GET, path: "/metrics", expected: only(["operator admin"], 200)),
                Endpoint(method: .GET, path: "/v1/tenants", expected: only(["operator admin"], 200)),
                Endpoint(method: .GET, path: "/v1/tokens", expected: only(["operator admin"], 200)),
                Endpoint(
                    method: .POST, path: "/v1/tenants",
                    body: try ControlPlaneHarness.json(CreateTenantRequest(name: "initech")),
                    expected: only(["operator admin"], 201)),
                Endpoint(
                    method: .POST, path: "/v1/tokens",
                    body: try ControlPlaneHarness.json(
                        CreateTokenRequest(tenant: "acme", scopes: ["deploy"], expiresInS: nil, description: nil)),
                    expected: only(["operator admin"], 201)),
                Endpoint(
                    method: .POST, path: "/v1/join-tokens",
                    body: try ControlPlaneHarness.json(CreateJoinTokenRequest(role: .host, expiresInS: 60)),
                    expected: only(["operator admin"], 201)),
                Endpoint(
                    method: .POST, path: "/v1/join",
                    body: try ControlPlaneHarness.json(JoinRequest(role: .host, name: "evil")),
                    expected: { _ in 401 }),
                Endpoint(
                    method: .POST, path: "/v1/internal/hosts/fra/sync",
                    body: try ControlPlaneHarness.json(
                        ControlPlaneHarness.hostStatus("fra", url: "http://127.0.0.1:9")),
                    expected: only(["host fra"], 200)),
                Endpoint(
                    method: .POST, path: "/v1/internal/usage", body: usageBatch, expected: only(["host fra"], 200)),
                // Bundles: a host gets the live versions placed on it; a version no longer live is not found.
                Endpoint(method: .GET, path: "/v1/bundles/\(liveHash)", expected: only(["host fra"], 200)),
                Endpoint(
                    method: .GET, path: "/v1/bundles/\(v1Hash)",
                    expected: { caller in caller.description == "host fra" ? 404 : 403 }),
                // Secrets: each deploy token reads and writes its own tenant's only; values go to hosts alone.
                Endpoint(
                    method: .GET, path: "/v1/functions/shared/secrets",
                    expected: { caller in
                        switch caller {
                        // Secrets may precede a function, so another tenant sees its own (empty) list, not a 404.
                        case .acme(.deploy), .globex(.deploy), .admin: 200
                        default: 403
                        }
                    }),
                Endpoint(
                    method: .GET, path: "/v1/internal/hosts/fra/secrets/shared?tenant=acme",
                    expected: only(["host fra"], 200)),
                Endpoint(
                    method: .PUT, path: "/v1/functions/shared/secrets/OTHER_KEY", body: Array("v".utf8),
                    expected: { caller in
                        switch caller {
                        // Another tenant's set creates a secret of its own function of that name.
                        case .acme(.deploy), .globex(.deploy), .admin: 200
                        default: 403
                        }
                    }),
                Endpoint(
                    method: .DELETE, path: "/v1/functions/shared/secrets/API_KEY", expected: scoped(.deploy, 200),
                    unknownNamePath: "/v1/functions/never-existed/secrets/API_KEY"),
                Endpoint(
                    method: .POST, path: "/v1/functions/shared/rollback", body: [], expected: scoped(.deploy, 200),
                    unknownNamePath: "/v1/functions/never-existed/rollback"),
                Endpoint(
                    method: .DELETE, path: "/v1/tokens/\(victim.summary.id)", expected: only(["operator admin"], 200)),
                Endpoint(
                    method: .DELETE, path: "/v1/functions/shared", expected: scoped(.deploy, 200),
                    unknownNamePath: "/v1/functions/never-existed"),
                // Last: other tenants' uploads of the same name create functions of their own.
                Endpoint(
                    method: .POST, path: "/v1/functions/shared/versions",
                    body: try ControlPlaneHarness.bundle("shared", 3),
                    expected: { caller in
                        switch caller {
                        // Another tenant's upload of the same name creates that tenant's own function.
                        case .acme(.deploy), .globex(.deploy), .admin: 201
                        default: 403
                        }
                    }),
            ]

            for endpoint in endpoints {
                for caller in Self.callers {
                    let expected =
                        caller.isInvalid && endpoint.path != "/v1/health" ? 401 : endpoint.expected(caller)
                    let token = tokens[caller.description]
                    let authorization: String? =
                        switch caller {
                        case .malformed: "Bearer verge_api_nothex_" + String(repeating: "z", count: 64)
                        default: nil
                        }
                    let before = try await snapshot(harness)
                    let response = try await harness.request(
                        endpoint.method, endpoint.path, token: token, authorization: authorization,
                        body: endpoint.body)
                    let label = "\(endpoint.method) \(endpoint.path) as \(caller)"
                    #expect(response.status == expected, "\(label): \(response.text)")
                    if !(caller.actsForAcme && (200..<300).contains(response.status)) {
                        #expect(try await snapshot(harness) == before, "\(label) changed acme's state")
                    }
                    if case .globex = caller {
                        #expect(!response.text.contains("acme"), "\(label) revealed acme's data: \(response.text)")
                    }
                    if caller.description != "host fra" {
                        #expect(!response.text.contains("acme-value"), "\(label) revealed a secret's value")
                    }
                    if expected >= 400 {
                        let error = try #require(try response.json()["error"] as? [String: Any], "\(label)")
                        #expect(error["code"] is String)
                    }
                    if expected == 404, let unknown = endpoint.unknownNamePath {
                        let never = try await harness.request(
                            endpoint.method, unknown, token: token, body: endpoint.body)
                        #expect(never.status == 404, "\(label)")
                        #expect(
                            never.text.replacingOccurrences(of: "never-existed", with: "shared") == response.text,
                            "\(label): another tenant's function must look like one that does not exist")
                    }
                }
            }
        }
    }

    @Test func aTenantsUsageTokenReadsOnlyItsOwnRecordsAndAdminReadsAll() async throws {
        try await ControlPlaneHarness.with { harness in
            _ = try await harness.store.createTenant("acme")
            _ = try await harness.store.createTenant("globex")
            _ = try await harness.store.usage.ingest([
                ControlPlaneHarness.usageRecord("a1", tenant: "acme", function: "f", host: "fra"),
                ControlPlaneHarness.usageRecord("g1", tenant: "globex", function: "f", host: "fra"),
            ])
            func tenants(_ token: String, _ query: String = "") async throws -> [String] {
                let response = try await harness.request(.GET, "/v1/usage" + query, token: token)
                #expect(response.status == 200)
                let records = try #require(try response.json()["records"] as? [[String: Any]])
                return records.compactMap { $0["tenant"] as? String }
            }
            let acme = try await harness.token("acme", [.usageRead])
            #expect(try await tenants(acme) == ["acme"])
            // Naming another tenant changes nothing for a tenant's token.
            #expect(try await tenants(acme, "?tenant=globex") == ["acme"])
            #expect(try await tenants(harness.admin) == ["acme", "globex"])
            #expect(try await tenants(harness.admin, "?tenant=globex") == ["globex"])

            func summaryTenants(_ token: String, _ query: String = "") async throws -> [String] {
                let response = try await harness.request(
                    .GET, "/v1/usage/summary?from=0&to=9999999999999999&group_by=tenant" + query, token: token)
                #expect(response.status == 200)
                let rows = try #require(try response.json()["rows"] as? [[String: Any]])
                return rows.compactMap { $0["tenant"] as? String }
            }
            #expect(try await summaryTenants(acme) == ["acme"])
            #expect(try await summaryTenants(acme, "&tenant=globex") == ["acme"])
            #expect(try await summaryTenants(harness.admin) == ["acme", "globex"])
            // A usage:read token reads usage and nothing else.
            for path in ["/v1/functions", "/v1/functions/f/logs", "/v1/tokens", "/v1/hosts"] {
                #expect(try await harness.request(.GET, path, token: acme).status == 403, "\(path)")
            }
            let bad = try await harness.request(.GET, "/v1/usage/summary?from=0&to=1&group_by=colour", token: acme)
            #expect(bad.status == 400)
            let missing = try await harness.request(.GET, "/v1/usage/summary?from=0", token: acme)
            #expect(missing.status == 400)
        }
    }
}
