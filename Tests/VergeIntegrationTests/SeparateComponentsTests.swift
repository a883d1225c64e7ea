import Foundation
import Testing
import VergeCore
import VergeTestSupport

/// The same binaries as separate processes, as on several machines: a host dies and the gateway fails over
/// without failing a call; the control plane dies and the hosts keep serving from their caches.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct SeparateComponentsTests {
    static let paris = (48.85, 2.35)
    static let newYork = (40.71, -74.01)

    @Test func failoverAndEdgeAutonomy() async throws {
        let scratch = try TemporaryDirectory(prefix: "verge-components")
        var components: [ComponentProcess] = []
        defer { scratch.remove() }
        do {
            let (controlPlane, api, adminToken) = try await ComponentProcess.startControlPlane(in: scratch.path)
            components.append(controlPlane)
            // First start: the control plane wrote an admin token, readable by its user only.
            let adminPath = scratch.path + "/cp/admin-token"
            #expect(try FileManager.default.attributesOfItem(atPath: adminPath)[.posixPermissions] as? Int == 0o600)
            let admin = ["VERGE_TOKEN": adminToken]
            // Every host and the gateway join with a one-time token given by file; none is on a command line.
            func joinTokenFile(_ role: String, _ name: String) async throws -> String {
                try await JoinTokens.file(
                    role: role, name: name, api: api, adminToken: adminToken, directory: scratch.path)
            }
            var hosts: [String: ComponentProcess] = [:]
            for (name, location) in [("fra", "50.11,8.68"), ("iad", "39.04,-77.49")] {
                let host = try await ComponentProcess.start(
                    [
                        "host", "--name", name, "--location", location, "--control-plane", api, "--data",
                        scratch.path + "/" + name, "--join-token-file", try await joinTokenFile("host", name),
                    ],
                    logPath: scratch.path + "/\(name).log"
                )
                hosts[name] = host
                components.append(host)
                let credential = scratch.path + "/\(name)/credential"
                #expect(
                    try FileManager.default.attributesOfItem(atPath: credential)[.posixPermissions] as? Int == 0o600)
            }
            let gateway = try await ComponentProcess.start(
                [
                    "gateway", "--bind", "127.0.0.1:0", "--control-plane", api, "--trusted-proxy", "127.0.0.0/8",
                    "--credential-file", scratch.path + "/gateway/credential", "--join-token-file",
                    try await joinTokenFile("gateway", "gateway"),
                ],
                logPath: scratch.path + "/gateway.log"
            )
            components.append(gateway)
            let gatewayURL = try #require(gateway.ready["gateway"])

            let deploy = try await CommandRunner.verge(
                ["deploy", Paths.fixtureFunction("echo"), "--api", api], environment: admin)
            #expect(deploy.status == 0, "\(deploy.stderr)")
            // The hosts finish installing at different moments; the gateway follows within its refresh interval.
            let routedToFra = try await eventually(timeout: .seconds(5)) {
                try await TestHTTP.get(gatewayURL + "/echo", from: Self.paris).header("x-verge-host") == "fra"
            }
            #expect(routedToFra)
            let routedToIad = try await eventually(timeout: .seconds(5)) {
                try await TestHTTP.get(gatewayURL + "/echo", from: Self.newYork).header("x-verge-host") == "iad"
            }
            #expect(routedToIad)

            // The nearest host dies: every call still succeeds, from the next nearest.
            await hosts["fra"]!.kill()
            for _ in 0..<5 {
                let response = try await TestHTTP.get(gatewayURL + "/echo", from: Self.paris)
                #expect(response.status == 200)
                #expect(response.header("x-verge-host") == "iad")
            }

            // The control plane dies: the remaining host keeps serving what it has cached.
            await controlPlane.kill()
            let served = try await TestHTTP.get(gatewayURL + "/echo", from: Self.newYork)
            #expect(served.status == 200)
            #expect(served.header("x-verge-host") == "iad")

            // Even restarted without a control plane, a host serves its cached functions (with the credential it
            // keeps in its data directory; the join token was good once).
            let iad = hosts["iad"]!
            #expect(await iad.stop() == 0)
            let restarted = try await ComponentProcess.start(
                [
                    "host", "--name", "iad", "--location", "39.04,-77.49", "--control-plane", api, "--data",
                    scratch.path + "/iad",
                ],
                logPath: scratch.path + "/iad-2.log"
            )
            components.append(restarted)
            let direct = try await TestHTTP.get(try #require(restarted.ready["host"]) + "/echo")
            #expect(direct.status == 200)
            #expect(direct.header("x-verge-host") == "iad")
            // It still knows the gateway's proof for it from its last sync: the gateway may read its status. The
            // gateway's own credential is not what hosts are told about.
            let gatewayCredential = try String(contentsOfFile: scratch.path + "/gateway/credential", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let proof = try #require(Credential(parsing: gatewayCredential)?.hostProof(for: "iad")).token
            let hostURL = try #require(restarted.ready["host"])
            let status = try await TestHTTP.request(
                hostURL + "/_verge/status", headers: [("x-verge-credential", proof)])
            #expect(status.status == 200)
            let withCredential = try await TestHTTP.request(
                hostURL + "/_verge/status", headers: [("x-verge-credential", gatewayCredential)])
            #expect(withCredential.status == 401)
            #expect(try await TestHTTP.get(hostURL + "/_verge/status").status == 401)
        } catch {
            for component in components { await component.stop() }
            throw error
        }
        for component in components { await component.stop() }
    }

    /// A component never starts open: without credential material, or advertising an address nobody can reach, it
    /// refuses and says what to configure.
    @Test func componentsWithoutCredentialsOrAReachableURLRefuseToStart() async throws {
        let scratch = try TemporaryDirectory(prefix: "verge-refuse")
        defer { scratch.remove() }
        let api = "http://127.0.0.1:1"
        let cases: [(arguments: [String], expected: String)] = [
            (
                [
                    "host", "--name", "fra", "--location", "50,8", "--control-plane", api, "--data",
                    scratch.path + "/fra",
                ],
                "--join-token-file or VERGE_JOIN_TOKEN"
            ),
            (
                [
                    "host", "--name", "fra", "--location", "50,8", "--control-plane", api, "--data",
                    scratch.path + "/fra",
                    "--bind", "0.0.0.0:0",
                ],
                "--advertise-url"
            ),
            (
                [
                    "host", "--name", "fra", "--location", "50,8", "--control-plane", api, "--data",
                    scratch.path + "/fra",
                    "--advertise-url", "http://0.0.0.0:8080",
                ],
                "--advertise-url"
            ),
            (
                [
                    "gateway", "--bind", "127.0.0.1:0", "--control-plane", api, "--credential-file",
                    scratch.path + "/gw",
                ],
                "--join-token-file or VERGE_JOIN_TOKEN"
            ),
        ]
        for (arguments, expected) in cases {
            let result = try await CommandRunner.verge(arguments, timeout: .seconds(30))
            #expect(result.status != 0, "\(arguments) started")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
        // The command line no longer takes a secret.
        let old = try await CommandRunner.verge(["control-plane", "--cluster-key", "k"], timeout: .seconds(30))
        #expect(old.status != 0)
        #expect(old.stderr.contains("--cluster-key"))
        // A credential file others may read is refused, naming the fix.
        let credential = scratch.path + "/iad/credential"
        try FileManager.default.createDirectory(atPath: scratch.path + "/iad", withIntermediateDirectories: true)
        FileManager.default.createFile(
            atPath: credential, contents: Data("verge_host_0123456789abcdef_\(String(repeating: "a", count: 64))".utf8),
            attributes: [.posixPermissions: 0o644])
        let open = try await CommandRunner.verge(
            ["host", "--name", "iad", "--location", "50,8", "--control-plane", api, "--data", scratch.path + "/iad"],
            timeout: .seconds(30))
        #expect(open.status != 0)
        #expect(open.stderr.contains("chmod 600"), "\(open.stderr)")
    }
}
