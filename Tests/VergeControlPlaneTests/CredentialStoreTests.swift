import Foundation
import GRDB
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeControlPlane

/// Credentials: their format, their storage (hashes only), expiry, revocation, one-time join tokens, and the
/// first-start bootstrap.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct CredentialStoreTests {
    @Test func credentialsAreRandomPrefixedAndParsedStrictly() throws {
        let credential = Credential.generate(.api)
        #expect(credential.token.hasPrefix("verge_api_"))
        #expect(credential.token.count == "verge_api_".count + 16 + 1 + 64)
        #expect(Credential(parsing: credential.token) == credential)
        #expect(!credential.description.contains(String(credential.token.suffix(64))))
        #expect(Credential.generate(.api) != credential)
        let secret = String(credential.token.suffix(64))
        for malformed in [
            "", "verge_api_", "Bearer x", "verge_xyz_0123456789abcdef_" + secret,
            "verge_api_0123456789ABCDEF_" + secret, "verge_api_0123456789abcde_" + secret,
            "verge_api_0123456789abcdef_" + secret.dropLast(), "verge_api_0123456789abcdef_" + secret + "_x",
            "xerge_api_0123456789abcdef_" + secret,
        ] {
            #expect(Credential(parsing: malformed) == nil, "\(malformed)")
        }
        #expect(credential.matches(hash: credential.hash))
        #expect(!Credential.generate(.api).matches(hash: credential.hash))
    }

    @Test func firstStartCreatesTheDefaultTenantAndOneAdminTokenOnly() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-store")
        defer { directory.remove() }
        let first = try ControlPlaneStore(path: directory.path + "/control.sqlite")
        let admin = try #require(try first.bootstrapIfEmpty())
        #expect(try await first.tenants().map(\.name) == [defaultTenant])
        let again = try ControlPlaneStore(path: directory.path + "/control.sqlite")
        #expect(try again.bootstrapIfEmpty() == nil)
        #expect(try await again.tokens(tenant: nil).count == 1)
        let stored = try #require(try await again.verify(admin))
        #expect(stored.scopes == ["admin"])
    }

    @Test func onlyHashesAreStoredAndTheControlPlaneFilesArePrivate() async throws {
        try await ControlPlaneHarness.with { harness in
            let created = try await harness.store.createToken(
                tenant: defaultTenant, scopes: [.deploy], expiresAtMs: nil, description: "ci")
            let secret = String(created.token.suffix(64))
            let dump = try await harness.store.database.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM credentials").map { "\($0)" }.joined()
            }
            #expect(!dump.contains(secret))
            #expect(!dump.contains(String(harness.admin.suffix(64))))
            #expect(dump.contains(Credential.hash(created.token)))
            let listed = try await harness.request(.GET, "/v1/tokens", token: harness.admin)
            #expect(listed.status == 200)
            #expect(!listed.text.contains(secret))
            for path in [harness.controlPlane.adminTokenPath, harness.directory.path + "/control/control.sqlite"] {
                let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
                #expect(mode == 0o600, "\(path)")
            }
        }
    }

    @Test func revokedAndExpiredTokensStopWorking() async throws {
        try await ControlPlaneHarness.with { harness in
            let body = try ControlPlaneHarness.json(
                CreateTokenRequest(tenant: defaultTenant, scopes: ["deploy"], expiresInS: 1, description: nil))
            let response = try await harness.request(.POST, "/v1/tokens", token: harness.admin, body: body)
            #expect(response.status == 201)
            let token = try #require(try response.json()["token"] as? String)
            #expect(try await harness.request(.GET, "/v1/functions", token: token).status == 200)
            // Expiry is checked on every call: it stops working once its second is over.
            let expired = try await eventually(timeout: .seconds(5)) {
                try await harness.request(.GET, "/v1/functions", token: token).status == 401
            }
            #expect(expired)

            let lasting = try await harness.token(defaultTenant, [.deploy])
            let id = try #require(Credential(parsing: lasting)?.id)
            #expect(try await harness.request(.GET, "/v1/functions", token: lasting).status == 200)
            #expect(try await harness.request(.DELETE, "/v1/tokens/\(id)", token: harness.admin).status == 200)
            #expect(try await harness.request(.GET, "/v1/functions", token: lasting).status == 401)
            #expect(try await harness.request(.DELETE, "/v1/tokens/nope", token: harness.admin).status == 404)
        }
    }

    @Test func theLastAdminTokenCannotBeRevoked() async throws {
        try await ControlPlaneHarness.with { harness in
            let id = try #require(Credential(parsing: harness.admin)?.id)
            let refused = try await harness.request(.DELETE, "/v1/tokens/\(id)", token: harness.admin)
            #expect(refused.status == 409)
            #expect(refused.text.contains("last admin token"))
            #expect(try await harness.request(.GET, "/v1/tokens", token: harness.admin).status == 200)
            // With a second admin token, the first one can go.
            let second = try await harness.token(defaultTenant, [.admin])
            #expect(try await harness.request(.DELETE, "/v1/tokens/\(id)", token: second).status == 200)
            #expect(try await harness.request(.GET, "/v1/tokens", token: harness.admin).status == 401)
        }
    }

    @Test func tokenRequestsAreValidated() async throws {
        try await ControlPlaneHarness.with { harness in
            _ = try await harness.store.createTenant("acme")
            let cases: [(CreateTokenRequest, Int, String)] = [
                (CreateTokenRequest(tenant: "acme", scopes: [], expiresInS: nil, description: nil), 400, "scope"),
                (CreateTokenRequest(tenant: "acme", scopes: ["root"], expiresInS: nil, description: nil), 400, "root"),
                (
                    CreateTokenRequest(tenant: "acme", scopes: ["admin"], expiresInS: nil, description: nil), 400,
                    "admin"
                ),
                (
                    CreateTokenRequest(tenant: "nobody", scopes: ["deploy"], expiresInS: nil, description: nil), 404,
                    "nobody"
                ),
                (
                    CreateTokenRequest(tenant: "acme", scopes: ["deploy"], expiresInS: 0, description: nil), 400,
                    "expires"
                ),
            ]
            for (request, status, mention) in cases {
                let before = try await harness.store.tokens(tenant: nil)
                let response = try await harness.request(
                    .POST, "/v1/tokens", token: harness.admin, body: try ControlPlaneHarness.json(request))
                #expect(response.status == status, "\(response.text)")
                #expect(response.text.contains(mention), "\(response.text)")
                #expect(try await harness.store.tokens(tenant: nil) == before)
            }
            let tenant = try await harness.request(
                .POST, "/v1/tenants", token: harness.admin,
                body: try ControlPlaneHarness.json(CreateTenantRequest(name: "acme")))
            #expect(tenant.status == 409)
            let invalid = try await harness.request(
                .POST, "/v1/tenants", token: harness.admin,
                body: try ControlPlaneHarness.json(CreateTenantRequest(name: "Acme!")))
            #expect(invalid.status == 400)
        }
    }

    @Test func twoTenantsMayEachHaveAFunctionOfTheSameName() async throws {
        try await ControlPlaneHarness.with { harness in
            _ = try await harness.store.createTenant("acme")
            _ = try await harness.store.createTenant("globex")
            let acme = try await harness.token("acme", [.deploy])
            let globex = try await harness.token("globex", [.deploy])
            #expect(try await harness.upload("hello", variant: 1, token: acme).status == 201)
            #expect(try await harness.upload("hello", variant: 2, token: globex).status == 201)
            let desired = try await harness.store.desiredState(for: nil)
            #expect(Set(desired.functions.map { "\($0.tenant)/\($0.name)" }) == ["acme/hello", "globex/hello"])
            #expect(Set(desired.functions.map(\.version)).count == 2)
            #expect(try await harness.request(.DELETE, "/v1/functions/hello", token: acme).status == 200)
            #expect(try await harness.store.desiredState(for: nil).functions.map(\.tenant) == ["globex"])
        }
    }
}
