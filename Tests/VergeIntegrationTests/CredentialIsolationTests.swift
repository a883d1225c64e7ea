import Foundation
import Testing
import VergeTestSupport

/// A deployed function hunts for credentials (its environment, every process's environment and command line, the
/// cluster's data and configuration directories) and tries each on the control plane's API: it finds none, and
/// the API answers it 401 whatever it tries.
@Suite(
    .serialized, .timeLimit(.minutes(3)),
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
                cluster.gatewayURL + "/credential-hunt?api=\(cluster.apiURL)&root=\(root)", timeout: .seconds(60))
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
}
