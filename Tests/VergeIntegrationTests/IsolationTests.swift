import Foundation
import Testing
import VergeTestSupport

/// What a function may not do to the host or to another function. With a root host each function version runs as
/// its own unprivileged user; the probe fixture reports whether each attempt was allowed.
@Suite(
    .serialized, .timeLimit(.minutes(3)),
    .enabled(if: geteuid() == 0, "per-function users need a root host"),
    .enabled(if: othersCanReach(Paths.repository), "the checkout must be reachable by other users")
)
struct IsolationTests {
    @Test func aFunctionCannotTouchTheHostOrAnotherFunction() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("probe")).status == 0)
            let functions = try await cluster.verge(["functions", "--format", "json"])
            let list = try JSONSerialization.jsonObject(with: Data(functions.stdout.utf8)) as? [[String: Any]] ?? []
            let echoVersion = try #require(list.first { $0["name"] as? String == "echo" }?["live_version"] as? String)
            let echoPID = try #require(try await TestHTTP.get(cluster.gatewayURL + "/echo").json()["pid"] as? Int)

            let response = try await TestHTTP.get(
                cluster.gatewayURL + "/probe?other_bundle=\(echoVersion)&other_pid=\(echoPID)"
            )
            #expect(response.status == 200)
            let report = try response.json()
            #expect((report["uid"] as? Int ?? 0) >= 200_000, "the worker runs as an unprivileged user of its own")
            for attempt in [
                "signal_host", "read_host_database", "list_bundles", "write_own_bundle", "read_other_bundle",
                "signal_other_worker", "read_other_environ",
            ] {
                #expect(report[attempt] as? String == "denied", "\(attempt): \(report[attempt] ?? "missing")")
            }
            // The host is unharmed and the other function still answers.
            #expect(try await TestHTTP.get(cluster.gatewayURL + "/echo").status == 200)
        }
    }
}

/// Whether every directory down to `path` lets other users through (the runtimes live in the checkout).
func othersCanReach(_ path: String) -> Bool {
    var url = URL(fileURLWithPath: path)
    while url.path != "/" {
        var info = stat()
        if stat(url.path, &info) == 0, info.st_mode & 0o001 == 0 { return false }
        url.deleteLastPathComponent()
    }
    return true
}
