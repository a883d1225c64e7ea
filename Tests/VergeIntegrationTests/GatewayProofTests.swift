import Foundation
import Testing
import VergeCore
import VergeTestSupport

/// The gateway proves itself to each host with a proof made for that host only (`docs/004-trust-model.md`): a host
/// that replays what it received gets nothing from another host, a host that joins later becomes routable once it
/// learnt the gateway's proof, and a revoked gateway is refused by every host after their next sync. Separate
/// processes, as on several machines.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct GatewayProofTests {
    static let paris = (48.85, 2.35)
    static let newYork = (40.71, -74.01)
    static let singapore = (1.35, 103.82)

    /// A call through the gateway for `FUNCTION.TENANT.localhost` from a client at `location`.
    static func call(
        _ gatewayURL: String, tenant: String, from location: (Double, Double)
    ) async throws -> TestResponse {
        try await TestHTTP.request(
            gatewayURL + "/",
            headers: [
                ("host", "echo.\(tenant).localhost"), ("cloudfront-viewer-latitude", "\(location.0)"),
                ("cloudfront-viewer-longitude", "\(location.1)"),
            ])
    }

    static func tenant(of response: TestResponse) -> String? {
        ((try? response.json())?["function"] as? [String: Any])?["tenant"] as? String
    }

    /// A host's refusal of a caller it does not recognise as the gateway: never a function's answer.
    static func refused(_ response: TestResponse, by host: String) -> Bool {
        response.status == 503 && response.header("x-verge-error") == "untrusted_caller"
            && response.header("x-verge-host") == host && tenant(of: response) == nil
    }

    @Test func eachHostTrustsOnlyItsOwnProofOfTheGateway() async throws {
        let scratch = try TemporaryDirectory(prefix: "verge-gateway-proof")
        var components: [ComponentProcess] = []
        defer { scratch.remove() }
        do {
            let (controlPlane, api, adminToken) = try await ComponentProcess.startControlPlane(in: scratch.path)
            components.append(controlPlane)
            let admin = ["VERGE_TOKEN": adminToken]
            func verge(_ arguments: [String], _ environment: [String: String] = admin) async throws -> CommandResult {
                try await CommandRunner.verge(arguments + ["--api", api], environment: environment)
            }
            #expect(try await verge(["tenants", "create", "acme"]).status == 0)
            let created = try await verge(["tokens", "create", "--tenant", "acme", "--scope", "deploy"])
            #expect(created.status == 0, "\(created.stderr)")
            let acme = ["VERGE_TOKEN": created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)]

            func startHost(_ name: String, _ location: String) async throws -> String {
                let joinToken = try await JoinTokens.file(
                    role: "host", name: name, api: api, adminToken: adminToken, directory: scratch.path)
                let host = try await ComponentProcess.start(
                    [
                        "host", "--name", name, "--location", location, "--control-plane", api, "--data",
                        scratch.path + "/" + name, "--join-token-file", joinToken,
                    ],
                    logPath: scratch.path + "/\(name).log")
                components.append(host)
                return try #require(host.ready["host"])
            }
            let fra = try await startHost("fra", "50.11,8.68")
            let iad = try await startHost("iad", "39.04,-77.49")
            for environment in [admin, acme] {
                let deployed = try await verge(["deploy", Paths.fixtureFunction("echo")], environment)
                #expect(deployed.status == 0, "\(deployed.stderr)")
            }
            let gateway = try await ComponentProcess.start(
                [
                    "gateway", "--bind", "127.0.0.1:0", "--control-plane", api, "--trusted-proxy", "127.0.0.0/8",
                    "--credential-file", scratch.path + "/gateway/credential", "--join-token-file",
                    try await JoinTokens.file(
                        role: "gateway", name: "gateway", api: api, adminToken: adminToken, directory: scratch.path),
                ],
                logPath: scratch.path + "/gateway.log")
            components.append(gateway)
            let gatewayURL = try #require(gateway.ready["gateway"])
            let credential = try #require(
                Credential(
                    parsing: try String(contentsOfFile: scratch.path + "/gateway/credential", encoding: .utf8)
                        .trimmingCharacters(in: .whitespacesAndNewlines)))

            // The gateway's calls, with their tenant and client location, are served on every host as the tenant
            // the gateway named.
            for (tenant, location, host) in [
                ("acme", Self.paris, "fra"), ("acme", Self.newYork, "iad"), ("default", Self.paris, "fra"),
                ("default", Self.newYork, "iad"),
            ] {
                let served = try await eventually(timeout: .seconds(10)) {
                    let response = try await Self.call(gatewayURL, tenant: tenant, from: location)
                    return response.status == 200 && response.header("x-verge-host") == host
                        && Self.tenant(of: response) == tenant
                }
                #expect(served, "\(tenant) on \(host)")
            }

            // What the gateway sent fra: fra's proof (its own credential never leaves the gateway). fra believes it;
            // iad, given the same proof, refuses the call rather than serve it as any tenant.
            let fraProof = try #require(credential.hostProof(for: "fra")).token
            let iadProof = try #require(credential.hostProof(for: "iad")).token
            let believed = try await TestHTTP.request(
                fra + "/echo", headers: [("x-verge-credential", fraProof), ("x-verge-tenant", "acme")])
            #expect(believed.status == 200 && Self.tenant(of: believed) == "acme", "\(believed.text)")
            for headers in [
                [("x-verge-credential", fraProof), ("x-verge-tenant", "acme")],
                [
                    ("x-verge-credential", fraProof), ("x-verge-client-latitude", "1"),
                    ("x-verge-client-longitude", "2"),
                ],
                [("x-verge-credential", fraProof)],
            ] {
                let replayed = try await TestHTTP.request(iad + "/echo", headers: headers)
                #expect(Self.refused(replayed, by: "iad"), "\(headers.map(\.0)): \(replayed.status) \(replayed.text)")
            }
            // Neither is the gateway's own credential, nor a tenant header without any credential, believed.
            for headers in [
                [("x-verge-credential", credential.token), ("x-verge-tenant", "acme")],
                [("x-verge-tenant", "acme")], [("x-verge-tenant", "default")],
            ] {
                let forged = try await TestHTTP.request(fra + "/echo", headers: headers)
                #expect(Self.refused(forged, by: "fra"), "\(headers.map(\.0)): \(forged.status) \(forged.text)")
            }
            // A plain direct call (no platform headers) is still the default tenant's, as before.
            #expect(Self.tenant(of: try await TestHTTP.get(fra + "/echo")) == "default")
            // The platform endpoints follow the same rule.
            let status = { (url: String, token: String) in
                try await TestHTTP.request(url + "/_verge/status", headers: [("x-verge-credential", token)]).status
            }
            #expect(try await status(fra, fraProof) == 200)
            #expect(try await status(iad, iadProof) == 200)
            #expect(try await status(iad, fraProof) == 401)
            #expect(try await status(fra, credential.token) == 401)

            // A host that joins after the gateway started becomes routable once it learnt the gateway's proof.
            let sin = try await startHost("sin", "1.35,103.82")
            let joined = try await eventually(timeout: .seconds(10)) {
                let response = try await Self.call(gatewayURL, tenant: "acme", from: Self.singapore)
                return response.status == 200 && response.header("x-verge-host") == "sin"
                    && Self.tenant(of: response) == "acme"
            }
            #expect(joined)
            let sinProof = try #require(credential.hostProof(for: "sin")).token
            #expect(try await status(sin, sinProof) == 200)
            #expect(
                Self.refused(
                    try await TestHTTP.request(
                        sin + "/echo", headers: [("x-verge-credential", fraProof), ("x-verge-tenant", "acme")]),
                    by: "sin"))

            // Revoking the gateway's credential: after their next sync, no host believes its proofs, and its calls
            // are refused, never served as some tenant.
            let revoked = try await verge(["tokens", "revoke", credential.id])
            #expect(revoked.status == 0, "\(revoked.stderr)")
            for (url, name) in [(fra, "fra"), (iad, "iad"), (sin, "sin")] {
                let proof = try #require(credential.hostProof(for: name)).token
                let refused = try await eventually(timeout: .seconds(10)) {
                    Self.refused(
                        try await TestHTTP.request(
                            url + "/echo", headers: [("x-verge-credential", proof), ("x-verge-tenant", "acme")]),
                        by: name)
                }
                #expect(refused, "\(name) still trusts the revoked gateway")
                #expect(try await status(url, proof) == 401)
                let kept = try String(contentsOfFile: scratch.path + "/\(name)/trusted-callers.json", encoding: .utf8)
                #expect(!kept.contains("\"gateway\""), "\(name) keeps no gateway entry: \(kept)")
            }
            for location in [Self.paris, Self.newYork, Self.singapore] {
                let call = try await Self.call(gatewayURL, tenant: "acme", from: location)
                #expect(call.status == 503 && Self.tenant(of: call) == nil, "\(call.status) \(call.text)")
            }
        } catch {
            for component in components { await component.stop() }
            throw error
        }
        for component in components { await component.stop() }
    }
}
