import Foundation
import Testing
import VergeTestSupport

/// Secrets as a user drives them: `verge secrets set|list|delete`, a function that sees the variable, and the
/// value nowhere else — not in an API answer, the cluster's log or the control plane's database.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct SecretsTests {
    @Test func aSecretReachesTheWorkerAndNothingElse() async throws {
        let value = "s3cret-\(UUID().uuidString)"
        let expectedHash = try await Self.sha256(value)
        try await LocalClusterProcess.with { cluster in
            // Set before the first deploy: the first workers already have it.
            let set = try await cluster.verge(
                ["secrets", "set", "secret-env", "API_TOKEN"], stdin: Array((value + "\n").utf8))
            #expect(set.status == 0, "secrets set failed: \(set.stderr)")
            #expect(!set.stdout.contains(value) && !set.stderr.contains(value))
            #expect(try await cluster.deploy(Paths.fixtureFunction("secret-env")).status == 0)

            let url = cluster.gatewayURL + "/secret-env?names=API_TOKEN,PLAIN"
            let seen = try await Self.hashes(url)
            #expect(seen["API_TOKEN"] as? String == expectedHash, "the worker does not see the secret: \(seen)")
            #expect(seen["PLAIN"] as? String == (try await Self.sha256("from-the-manifest")))

            // Names only, from the CLI and the API.
            let list = try await cluster.verge(["secrets", "list", "secret-env"])
            #expect(list.status == 0 && list.stdout.contains("API_TOKEN") && !list.stdout.contains(value))
            let listed = try await TestHTTP.request(
                cluster.apiURL + "/v1/functions/secret-env/secrets",
                headers: [("authorization", "Bearer " + (try cluster.adminToken()))])
            #expect(listed.status == 200 && listed.text.contains("API_TOKEN") && !listed.text.contains(value))

            // Names are checked like manifest env names; VERGE_* stays Verge's.
            for name in ["VERGE_FD", "lower", "1ST"] {
                let refused = try await cluster.verge(["secrets", "set", "secret-env", name], stdin: Array("x".utf8))
                #expect(refused.status != 0 && refused.stderr.contains("bad_request"), "\(name): \(refused.stderr)")
            }
            // Hosts fetch values with the cluster key only.
            let host = try await TestHTTP.request(cluster.apiURL + "/v1/internal/hosts/fra/secrets/secret-env")
            #expect(host.status == 401 && !host.text.contains(value))

            // A new value reaches the workers after the next sync; a deleted one is gone from their environment.
            let second = value + "-2"
            #expect(
                try await cluster.verge(["secrets", "set", "secret-env", "API_TOKEN"], stdin: Array(second.utf8)).status
                    == 0)
            let secondHash = try await Self.sha256(second)
            #expect(try await eventually { try await Self.hashes(url)["API_TOKEN"] as? String == secondHash })
            let deleted = try await cluster.verge(["secrets", "delete", "secret-env", "API_TOKEN"])
            #expect(deleted.status == 0, "secrets delete failed: \(deleted.stderr)")
            #expect(try await eventually { try await Self.hashes(url)["API_TOKEN"] is NSNull })
            #expect(try await cluster.verge(["secrets", "delete", "secret-env", "API_TOKEN"]).status != 0)

            // At rest: sealed in the control plane's database, 0600 files on the hosts, nothing in the log.
            let data = cluster.dataDirectory.path + "/data"
            for file in ["control/control.sqlite", "control/control.sqlite-wal"] {
                let bytes = FileManager.default.contents(atPath: data + "/" + file) ?? Data()
                #expect(bytes.range(of: Data(value.utf8)) == nil, "\(file) holds the value in clear")
            }
            #expect(try Self.mode(data + "/control/secret.key") == 0o600)
            #expect(try Self.mode(data + "/hosts/fra/deployments.json") == 0o600)
            #expect(!cluster.log.contains(value))
        }
    }

    /// A host restarted while the control plane is down still gives its workers their secrets, from its 0600 file.
    @Test func aRestartedHostKeepsSecretsWithoutTheControlPlane() async throws {
        let scratch = try TemporaryDirectory(prefix: "verge-secrets")
        defer { scratch.remove() }
        var components: [ComponentProcess] = []
        let value = "autonomous-\(UUID().uuidString)"
        let expectedHash = try await Self.sha256(value)
        do {
            let (controlPlane, api, admin) = try await ComponentProcess.startControlPlane(in: scratch.path)
            components.append(controlPlane)
            let join = try await JoinTokens.file(
                role: "host", name: "fra", api: api, adminToken: admin, directory: scratch.path)
            let hostArguments = [
                "host", "--name", "fra", "--location", "50.11,8.68", "--control-plane", api, "--data",
                scratch.path + "/fra", "--join-token-file", join,
            ]
            let host = try await ComponentProcess.start(hostArguments, logPath: scratch.path + "/fra.log")
            components.append(host)
            let set = try await CommandRunner.verge(
                ["secrets", "set", "secret-env", "API_TOKEN", "--api", api], environment: ["VERGE_TOKEN": admin],
                stdin: Array(value.utf8))
            #expect(set.status == 0, "\(set.stderr)")
            let deploy = try await CommandRunner.verge(
                ["deploy", Paths.fixtureFunction("secret-env"), "--api", api], environment: ["VERGE_TOKEN": admin])
            #expect(deploy.status == 0, "\(deploy.stderr)")
            let url = try #require(host.ready["host"]) + "/secret-env?names=API_TOKEN"
            #expect(try await eventually { (try? await Self.hashes(url))?["API_TOKEN"] as? String == expectedHash })

            await controlPlane.kill()
            #expect(await host.stop() == 0)
            let restarted = try await ComponentProcess.start(hostArguments, logPath: scratch.path + "/fra-2.log")
            components.append(restarted)
            let after = try await Self.hashes(try #require(restarted.ready["host"]) + "/secret-env?names=API_TOKEN")
            #expect(after["API_TOKEN"] as? String == expectedHash)
            #expect(try Self.mode(scratch.path + "/fra/deployments.json") == 0o600)

            // A deployments file others can read: a root host makes it owner-only again before reading it (its data
            // directory is protected at start); any other host does not trust it with secrets and does not serve
            // that function from it.
            #expect(await restarted.stop() == 0)
            try FileManager.default.setAttributes(
                [.posixPermissions: 0o644], ofItemAtPath: scratch.path + "/fra/deployments.json")
            let exposed = try await ComponentProcess.start(hostArguments, logPath: scratch.path + "/fra-3.log")
            components.append(exposed)
            let response = try await TestHTTP.request(try #require(exposed.ready["host"]) + "/secret-env")
            let log = (try? String(contentsOfFile: scratch.path + "/fra-3.log", encoding: .utf8)) ?? ""
            if geteuid() == 0 {
                #expect(try Self.mode(scratch.path + "/fra/deployments.json") == 0o600)
                #expect(response.status == 200)
            } else {
                #expect(response.status == 404)
                #expect(log.contains("chmod 600"))
            }
            for log in ["cp.log", "fra.log", "fra-2.log", "fra-3.log"] {
                let text = (try? String(contentsOfFile: scratch.path + "/" + log, encoding: .utf8)) ?? ""
                #expect(!text.contains(value), "\(log) holds the value")
            }
        } catch {
            for component in components { await component.stop() }
            throw error
        }
        for component in components { await component.stop() }
    }

    static func hashes(_ url: String) async throws -> [String: Any] {
        let response = try await TestHTTP.request(url)
        guard response.status == 200 else {
            throw TestFailure("secret-env answered \(response.status): \(response.text)")
        }
        return try #require(try response.json()["sha256"] as? [String: Any])
    }

    static func sha256(_ text: String) async throws -> String {
        let result = try await CommandRunner.run("/usr/bin/sha256sum", [], stdin: Array(text.utf8))
        return String(result.stdout.prefix(64))
    }

    static func mode(_ path: String) throws -> Int {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }
}
