import Foundation
import Testing
import VergeTestSupport

/// A deployed function hunts for credentials (its environment, every process's environment and command line, the
/// cluster's data and configuration directories) and tries each on the control plane's API: it finds none, and
/// the API answers it 401 whatever it tries.
@Suite(
    .serialized, .cluster, .timeLimit(.minutes(3)),
    .enabled(if: geteuid() == 0, "sandboxes need a root host (CI runs as root)")
)
struct CredentialIsolationTests {
    @Test func aFunctionFindsNoCredentialThatOpensTheAPI() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("credential-hunt")).status == 0)
            // The cluster holds credentials the hunt could look for: the admin token and the CLI's copy.
            #expect(try cluster.adminToken().hasPrefix("verge_api_"))
            #expect(FileManager.default.fileExists(atPath: cluster.configHome + "/verge/credentials.json"))
            let root = cluster.dataDirectory.path
            let response = try await TestHTTP.request(
                cluster.gatewayURL + "/credential-hunt?api=\(cluster.apiURL)&root=\(root)", timeout: .seconds(90))
            #expect(response.status == 200, "\(response.text)")
            let report = try response.json()
            #expect(report["found"] as? [String] == [], "credentials readable by a function: \(report["found"] ?? "")")
            let calls = try #require(report["calls"] as? [String: Any])
            #expect(!calls.isEmpty)
            for (call, status) in calls {
                // 401, or no network at all; never an answer that means a credential was accepted.
                #expect((status as? Int).map { $0 == 401 } ?? true, "\(call): \(status)")
            }
        }
    }

    /// `verge dev` stores its admin token for the CLI (mode 0600, keyed by the API URL); `--token` and
    /// `VERGE_TOKEN` override it; a token revoked with `verge tokens revoke` stops working at once.
    @Test func theCLIsStoredTokenIsPrivateOverriddenByFlagOrEnvironmentAndRevocable() async throws {
        try await LocalClusterProcess.with { cluster in
            let path = cluster.configHome + "/verge/credentials.json"
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
            let entry = (stored as? [String: [String: String]])?[cluster.apiURL]
            #expect(entry?["token"] == (try cluster.adminToken()), "no entry for \(cluster.apiURL)")
            #expect(try await cluster.verge(["functions"]).status == 0)

            let unknown = "verge_api_0123456789abcdef_" + String(repeating: "ab", count: 32)
            let flagged = try await cluster.verge(["functions", "--token", unknown])
            #expect(flagged.status != 0 && flagged.stderr.contains("unauthorized"), "\(flagged.stderr)")
            let fromEnvironment = try await cluster.verge(["functions"], environment: ["VERGE_TOKEN": unknown])
            #expect(fromEnvironment.status != 0 && fromEnvironment.stderr.contains("unauthorized"))

            let created = try await cluster.verge(["tokens", "create", "--tenant", "default", "--scope", "deploy"])
            let token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(token.hasPrefix("verge_api_"), "\(created.stdout) \(created.stderr)")
            #expect(try await cluster.verge(["functions"], environment: ["VERGE_TOKEN": token]).status == 0)
            let id = String(token.split(separator: "_")[2])
            #expect(try await cluster.verge(["tokens", "revoke", id]).status == 0)
            let revoked = try await cluster.verge(["functions"], environment: ["VERGE_TOKEN": token])
            #expect(revoked.status != 0 && revoked.stderr.contains("unauthorized"), "\(revoked.stderr)")
        }
    }
}
