import Foundation
import Testing
import VergeTestSupport

/// Tenants through the real CLI and gateway: the operator creates a tenant and a token for it; the tenant deploys a
/// function with the same name (and the same bytes) as the default tenant's; each is reached at its own host name,
/// the default tenant's also at `/NAME`, and usage records say whose call it was.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct TenantRoutingTests {
    @Test func twoTenantsServeTheSameNameAtTheirOwnHostNames() async throws {
        try await LocalClusterProcess.with { cluster in
            // verge dev stored the operator's credential, readable by this user only: no flags needed.
            let stored = cluster.configHome + "/verge/credentials.json"
            #expect(try FileManager.default.attributesOfItem(atPath: stored)[.posixPermissions] as? Int == 0o600)
            let entries = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stored)))
            #expect((entries as? [String: Any])?.keys.contains(cluster.apiURL) == true)
            #expect(try await cluster.verge(["tenants", "create", "acme"]).status == 0)
            let created = try await cluster.verge([
                "tokens", "create", "--tenant", "acme", "--scope", "deploy", "usage:read", "logs:read",
            ])
            #expect(created.status == 0, "\(created.stderr)")
            let acme = ["VERGE_TOKEN": created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)]
            #expect(acme["VERGE_TOKEN"]!.hasPrefix("verge_api_"))
            let listed = try await cluster.verge(["tokens", "list", "--format", "json"])
            #expect(!listed.stdout.contains(acme["VERGE_TOKEN"]!), "a token is shown only once")

            let acmeDeploy = try await cluster.verge(["deploy", Paths.fixtureFunction("echo")], environment: acme)
            #expect(acmeDeploy.status == 0, "\(acmeDeploy.stderr)")
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            // The acme token lists acme's functions only; it cannot manage tenants.
            let functions = try await cluster.verge(["functions", "--format", "json"], environment: acme)
            #expect(functions.stdout.contains("\"acme\"") && !functions.stdout.contains("\"default\""))
            #expect(try await cluster.verge(["tenants", "list"], environment: acme).status != 0)

            func tenant(of response: TestResponse) throws -> String? {
                (try response.json()["function"] as? [String: Any])?["tenant"] as? String
            }
            let byName = try await TestHTTP.request(
                cluster.gatewayURL + "/hello/there?x=1", headers: [("host", "echo.acme.localhost")])
            // Not deployed as 'hello': the Host header decides, and the path goes to the function under /echo.
            #expect(byName.status == 200, "\(byName.text)")
            #expect(try tenant(of: byName) == "acme")
            #expect(try byName.json()["path"] as? String == "/echo/hello/there")
            let defaultByPath = try await TestHTTP.get(cluster.gatewayURL + "/echo")
            #expect(try tenant(of: defaultByPath) == "default")
            let defaultByName = try await TestHTTP.request(
                cluster.gatewayURL + "/", headers: [("host", "echo.default.localhost:80")])
            #expect(try tenant(of: defaultByName) == "default")
            let nobody = try await TestHTTP.request(
                cluster.gatewayURL + "/", headers: [("host", "echo.globex.localhost")])
            #expect(nobody.status == 404)
            // A client cannot pick the tenant by sending the gateway's header straight to a host: the host refuses
            // the call (it does not come from the gateway) rather than serve it as any tenant's.
            let host = try #require(cluster.hostURLs["fra"])
            let forged = try await TestHTTP.request(host + "/echo", headers: [("x-verge-tenant", "acme")])
            #expect(forged.status == 503 && forged.header("x-verge-error") == "untrusted_caller", "\(forged.text)")
            #expect(forged.header("x-verge-host") == "fra" && (try? tenant(of: forged)) == nil)
            #expect(try tenant(of: try await TestHTTP.get(host + "/echo")) == "default")

            // Usage records carry the tenant; acme's token reads acme's records only.
            let records = try await usageRecords(cluster, expecting: 4)
            #expect(
                records.compactMap { $0["tenant"] as? String }.sorted() == ["acme", "default", "default", "default"])
            let own = try await cluster.verge(["usage", "--format", "jsonl"], environment: acme)
            #expect(own.stdout.split(separator: "\n").count == 1)
            #expect(own.stdout.contains("\"tenant\":\"acme\""))

            // Log lines carry the tenant, and acme reads its own.
            #expect(try await cluster.verge(["deploy", Paths.fixtureFunction("logs")], environment: acme).status == 0)
            let logged = try await TestHTTP.request(
                cluster.gatewayURL + "/", headers: [("host", "logs.acme.localhost")])
            let id = try #require(logged.header("x-verge-invocation-id"), "\(logged.status) \(logged.text)")
            #expect(
                try await eventually(timeout: .seconds(10)) {
                    let lines = try await cluster.verge(
                        ["logs", "logs", "--invocation", id, "--format", "jsonl"], environment: acme)
                    return lines.stdout.contains("\"invocation_id\":\"\(id)\"")
                        && lines.stdout.contains("\"tenant\":\"acme\"")
                }, "no log line of \(id) tagged with tenant acme")
            // So do the metrics: acme's calls are counted apart from the default tenant's.
            let metrics = try await TestHTTP.request(
                cluster.apiURL + "/metrics", headers: [("authorization", "Bearer " + (try cluster.adminToken()))])
            let invocations = metrics.text.split(separator: "\n").filter { $0.hasPrefix("verge_invocations_total{") }
            #expect(invocations.contains { $0.contains("tenant=\"acme\"") && $0.contains("function=\"echo\"") })
            #expect(invocations.contains { $0.contains("tenant=\"default\"") && $0.contains("function=\"echo\"") })
        }
    }
}
