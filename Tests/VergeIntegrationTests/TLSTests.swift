import Foundation
import Testing
import VergeTestSupport

/// TLS on the API and on all cluster traffic, with a CA the test makes itself: the CLI, hosts and the gateway
/// reach the components that present its certificates, and refuse one signed by another CA.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct TLSTests {
    @Test func theClusterSpeaksTLSAndRefusesAWrongCertificate() async throws {
        let scratch = try TemporaryDirectory(prefix: "verge-tls")
        defer { scratch.remove() }
        let files = try TestCertificateAuthority(name: "cluster").writeFiles(to: scratch.path)
        let wrong = try TestCertificateAuthority(name: "wrong").writeFiles(to: scratch.path)
        let tls = ["--tls-cert", files.certificate, "--tls-key", files.key, "--tls-ca", files.ca]
        var components: [ComponentProcess] = []
        do {
            let controlPlane = try await ComponentProcess.start(
                ["control-plane", "--api", "127.0.0.1:0", "--data", scratch.path + "/cp", "--connection-idle-timeout", "2"]
                    + tls,
                logPath: scratch.path + "/cp.log")
            components.append(controlPlane)
            let api = try #require(controlPlane.ready["api"])
            #expect(api.hasPrefix("https://"))
            let admin = try JoinTokens.adminToken(controlPlaneData: scratch.path + "/cp")
            func join(_ role: String, _ name: String) async throws -> [String] {
                [
                    "--join-token-file",
                    try await JoinTokens.file(
                        role: role, name: name, api: api, adminToken: admin, directory: scratch.path,
                        extraArguments: ["--tls-ca", files.ca]),
                ]
            }
            let host = try await ComponentProcess.start(
                [
                    "host", "--name", "fra", "--location", "50.11,8.68", "--control-plane", api, "--data",
                    scratch.path + "/fra",
                ] + (try await join("host", "fra")) + tls,
                logPath: scratch.path + "/fra.log")
            components.append(host)
            #expect(host.ready["host"]?.hasPrefix("https://") == true)
            let gateway = try await ComponentProcess.start(
                [
                    "gateway", "--bind", "127.0.0.1:0", "--control-plane", api, "--credential-file",
                    scratch.path + "/gateway/credential",
                ] + (try await join("gateway", "gateway")) + tls,
                logPath: scratch.path + "/gateway.log")
            components.append(gateway)
            let gatewayURL = try #require(gateway.ready["gateway"])

            // The CLI trusts the CA; the deploy waits until the host, syncing over TLS, serves the version.
            let deploy = try await CommandRunner.verge(
                ["deploy", Paths.fixtureFunction("echo"), "--api", api, "--tls-ca", files.ca],
                environment: ["VERGE_TOKEN": admin])
            #expect(deploy.status == 0, "\(deploy.stderr)")
            // Client → gateway → host, each hop over TLS.
            #expect(
                try await eventually {
                    let response = try? await TestHTTP.get(gatewayURL + "/echo", trusting: files.ca)
                    return response?.status == 200 && response?.header("x-verge-host") == "fra"
                })
            let echoed = try await TestHTTP.get(gatewayURL + "/echo", trusting: files.ca).json()
            #expect((echoed["headers"] as? [String: Any])?["x-forwarded-proto"] as? String == "https")

            // A certificate from another CA is refused: by the CLI, by an HTTPS client, by a host.
            let refused = try await CommandRunner.verge(
                ["functions", "--api", api, "--tls-ca", wrong.ca], environment: ["VERGE_TOKEN": admin])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("cannot reach the control plane"), "\(refused.stderr)")
            let systemRoots = try await CommandRunner.verge(
                ["functions", "--api", api], environment: ["VERGE_TOKEN": admin])
            #expect(systemRoots.status != 0, "the system's roots trusted a certificate of the test's own CA")
            await #expect(throws: (any Error).self) { try await TestHTTP.get(gatewayURL + "/echo", trusting: wrong.ca) }
            // A host that does not trust the control plane's certificate cannot even join.
            let strayHost = try? await ComponentProcess.start(
                [
                    "host", "--name", "iad", "--location", "39.04,-77.49", "--control-plane", api, "--data",
                    scratch.path + "/iad", "--tls-ca", wrong.ca,
                ] + (try await join("host", "iad")),
                logPath: scratch.path + "/iad.log")
            if let strayHost { components.append(strayHost) }
            #expect(strayHost == nil, "a host that refuses the control plane's certificate started")
            let strayLog = (try? String(contentsOfFile: scratch.path + "/iad.log", encoding: .utf8)) ?? ""
            #expect(strayLog.contains("cannot reach the control plane"), "\(strayLog)")
            // A connection that never starts its TLS handshake is closed by the idle timeout.
            let silent = try RawHTTPConnection(url: api.replacingOccurrences(of: "https://", with: "http://"))
            #expect(try await blocking { silent.waitForClose() })
            // Plain HTTP on a TLS port gets no HTTP answer.
            let plain = try? await TestHTTP.request(
                api.replacingOccurrences(of: "https://", with: "http://") + "/v1/health")
            #expect(plain?.status != 200)
        } catch {
            for component in components { await component.stop() }
            throw error
        }
        for component in components { await component.stop() }
    }
}
