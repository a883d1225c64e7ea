import Foundation
import Testing
import VergeTestSupport

/// A host's `/_verge/status` and `/_verge/logs` answer only the credentials the control plane vouches for (the
/// gateway's, the control plane's own); an API token, even the operator's, is not one of them.
@Suite(.serialized, .cluster, .timeLimit(.minutes(2)))
struct HostPlatformEndpointTests {
    @Test func statusAndLogsNeedACredentialTheHostWasToldAbout() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("logs")).status == 0)
            let host = try #require(cluster.hostURLs["fra"])
            let admin = try cluster.adminToken()
            for path in ["/_verge/status", "/_verge/logs?function=logs"] {
                for headers in [
                    [], [("x-verge-credential", admin)], [("authorization", "Bearer " + admin)],
                    [("x-verge-credential", "verge_gw_0123456789abcdef_" + String(repeating: "0", count: 64))],
                ] {
                    let response = try await TestHTTP.request(host + path, headers: headers)
                    #expect(response.status == 401, "\(path) with \(headers.map(\.0))")
                }
            }
            #expect(try await TestHTTP.get(host + "/_verge/health").status == 200)
            // The control plane's own credential works: `verge logs` gathers lines from every host.
            let call = try await TestHTTP.get(cluster.gatewayURL + "/logs")
            let id = try #require(call.header("x-verge-invocation-id"))
            let found = try await eventually(timeout: .seconds(10)) {
                try await cluster.verge(["logs", "logs", "--invocation", id, "--format", "jsonl"]).stdout.contains(id)
            }
            #expect(found)
        }
    }
}
