import Foundation
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeControlPlane

/// Hosts and gateways: a host speaks only for itself, joins once with a one-time token, and advertises a URL
/// others can reach; the gateway may read the host list and nothing else.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct HostIdentityTests {
    @Test func aHostCannotSyncAsAnotherHostOrClaimItsURL() async throws {
        try await ControlPlaneHarness.with { harness in
            let fra = try harness.controlPlane.issueHostCredential(name: "fra").token
            let iad = try harness.controlPlane.issueHostCredential(name: "iad").token
            #expect(try await harness.sync(iad, as: "iad", url: "http://127.0.0.1:2001").status == 200)
            let before = try await harness.store.hosts(livenessWindow: .seconds(60)).map { "\($0.name) \($0.url)" }
            #expect(try await harness.sync(fra, as: "iad", url: "http://127.0.0.1:2002").status == 403)
            // fra may not take iad's address either: the gateway would send iad's calls to whoever answers there.
            #expect(try await harness.sync(fra, as: "fra", url: "http://127.0.0.1:2001").status == 403)
            #expect(try await harness.sync(fra, as: "fra", url: "http://0.0.0.0:2003").status == 400)
            #expect(
                try await harness.store.hosts(livenessWindow: .seconds(60)).map { "\($0.name) \($0.url)" } == before)
            // Its own name at its own address works, and the answer lists who may call the host.
            let own = try await harness.sync(fra, as: "fra", url: "http://127.0.0.1:2003")
            #expect(own.status == 200)
            let callers = try #require(try own.json()["trusted_callers"] as? [[String: Any]])
            #expect(Set(callers.compactMap { $0["role"] as? String }) == ["control-plane"])
            // A gateway's own credential is never listed: a host learns only the gateway's proof made for it, once
            // the gateway registers it (GatewayHostProofTests).
            let gateway = try harness.controlPlane.issueGatewayCredential(label: "gw")
            let again = try await harness.sync(fra, as: "fra", url: "http://127.0.0.1:2003")
            let listedCallers = try #require(try again.json()["trusted_callers"] as? [[String: Any]])
            #expect(listedCallers.compactMap { $0["role"] as? String } == ["control-plane"])
            #expect(!again.text.contains(gateway.hash))
            // Revoking a host's credential takes it out of the host list (and so out of routing) at once.
            let listed = try await harness.request(.GET, "/v1/hosts", token: harness.admin)
            #expect(listed.text.contains("\"fra\"") && listed.text.contains("\"iad\""))
            let fraID = try #require(Credential(parsing: fra)?.id)
            #expect(try await harness.request(.DELETE, "/v1/tokens/\(fraID)", token: harness.admin).status == 200)
            let after = try await harness.request(.GET, "/v1/hosts", token: harness.admin)
            #expect(!after.text.contains("\"fra\"") && after.text.contains("\"iad\""))
            #expect(try await harness.sync(fra, as: "fra", url: "http://127.0.0.1:2003").status == 401)
        }
    }

    /// A function pinned to regions is placed only on their hosts: no other host is told to run it, fetches its
    /// secrets, or learns it exists.
    @Test func aPinnedFunctionAndItsSecretsGoOnlyToTheHostsOfItsRegions() async throws {
        try await ControlPlaneHarness.with { harness in
            let fra = try harness.controlPlane.issueHostCredential(name: "fra-2").token
            let iad = try harness.controlPlane.issueHostCredential(name: "iad").token
            let pinned = try await harness.request(
                .POST, "/v1/functions/pinned/versions", token: harness.admin,
                body: try ControlPlaneHarness.bundle("pinned", 1, regions: ["fra"]))
            #expect(pinned.status == 201, "\(pinned.text)")
            #expect(try await harness.upload("anywhere", variant: 1, token: harness.admin).status == 201)
            for function in ["pinned", "anywhere"] {
                let secret = try await harness.request(
                    .PUT, "/v1/functions/\(function)/secrets/API_KEY", token: harness.admin,
                    body: Array("value-of-\(function)".utf8))
                #expect(secret.status == 200, "\(secret.text)")
            }
            func desired(_ token: String, _ name: String, port: Int) async throws -> [String] {
                let answer = try await harness.sync(token, as: name, url: "http://127.0.0.1:\(port)")
                #expect(answer.status == 200, "\(answer.text)")
                return try #require(try answer.json()["functions"] as? [[String: Any]]).compactMap { $0["name"] as? String }
            }
            #expect(try await desired(fra, "fra-2", port: 2101).sorted() == ["anywhere", "pinned"])
            #expect(try await desired(iad, "iad", port: 2102) == ["anywhere"])
            func secrets(_ token: String, _ host: String, _ function: String) async throws -> TestResponse {
                try await harness.request(.GET, "/v1/internal/hosts/\(host)/secrets/\(function)", token: token)
            }
            let own = try await secrets(fra, "fra-2", "pinned")
            #expect(own.status == 200 && own.text.contains("value-of-pinned"), "\(own.text)")
            let other = try await secrets(iad, "iad", "pinned")
            #expect(other.status == 404, "\(other.text)")
            #expect(!other.text.contains("value-of"))
            #expect(try await secrets(iad, "iad", "anywhere").text.contains("value-of-anywhere"))
        }
    }

    /// Other spellings of iad's address: each reaches iad's listener, so none may be fra's.
    static let iadAliases = [
        "http://127.0.0.1:2001/", "http://127.0.0.1:02001", "http://localhost:2001",
        "http://LocalHost.:2001", "http://127.1:2001", "http://0x7f.0.0.1:2001", "http://2130706433:2001",
        "http://[::ffff:127.0.0.1]:2001",
    ]

    @Test(arguments: iadAliases)
    func aHostCannotClaimAnotherHostsURLSpelledAnotherWay(alias: String) async throws {
        try await ControlPlaneHarness.with { harness in
            let fra = try harness.controlPlane.issueHostCredential(name: "fra").token
            let iad = try harness.controlPlane.issueHostCredential(name: "iad").token
            #expect(try await harness.sync(iad, as: "iad", url: "http://127.0.0.1:2001").status == 200)
            let claim = try await harness.sync(fra, as: "fra", url: alias)
            #expect(claim.status == 403, "fra advertised \(alias): \(claim.text)")
            #expect(!(try await harness.store.hosts(livenessWindow: .seconds(60)).contains { $0.name == "fra" }))
            // iad itself may spell its own address another way.
            #expect(try await harness.sync(iad, as: "iad", url: alias).status == 200)
        }
    }

    @Test(arguments: [
        "http://0:2003", "http://0x0:2003", "http://[::]:2003", "http://[0::0]:2003", "http://0.0.0.0.:2003",
        "http://127.0.0.1:2003/route", "http://127.0.0.1:2003?x=1", "http://user@127.0.0.1:2003", "ftp://127.0.0.1:21",
        "HTTP://127.0.0.1:2003", "http://127.0.0.1:0",
    ])
    func unspecifiedOrUnusableAdvertisedURLsAreRefused(url: String) async throws {
        try await ControlPlaneHarness.with { harness in
            let fra = try harness.controlPlane.issueHostCredential(name: "fra").token
            let response = try await harness.request(
                .POST, "/v1/internal/hosts/fra/sync", token: fra,
                body: try ControlPlaneHarness.json(ControlPlaneHarness.hostStatus("fra", url: url)))
            #expect(response.status == 400, "\(url): \(response.text)")
            #expect(try await harness.store.hosts(livenessWindow: .seconds(60)).isEmpty)
        }
    }

    @Test func aHostShipsOnlyItsOwnRecordsAndAForgedEarlyRecordDisplacesNothing() async throws {
        try await ControlPlaneHarness.with { harness in
            let fra = try harness.controlPlane.issueHostCredential(name: "fra").token
            let iad = try harness.controlPlane.issueHostCredential(name: "iad").token
            func ship(_ token: String, _ batch: UsageBatch) async throws -> TestResponse {
                try await harness.request(
                    .POST, "/v1/internal/usage", token: token, body: try ControlPlaneHarness.json(batch))
            }
            let iadRecord = ControlPlaneHarness.usageRecord("call-1", tenant: "default", function: "f", host: "iad")
            // fra cannot ship iad's record, under either host name.
            #expect(try await ship(fra, UsageBatch(host: "iad", records: [iadRecord])).status == 403)
            #expect(try await ship(fra, UsageBatch(host: "fra", records: [iadRecord])).status == 403)
            #expect(try await harness.store.usage.count(tenant: nil) == 0)
            // fra ships a record of its own with iad's invocation id before iad does…
            var forged = iadRecord
            forged.host = "fra"
            forged.durationUs = 1
            #expect(try await ship(fra, UsageBatch(host: "fra", records: [forged])).status == 200)
            // …and iad's real record is still stored, not counted as a duplicate.
            let real = try await ship(iad, UsageBatch(host: "iad", records: [iadRecord]))
            #expect(real.status == 200)
            #expect(try real.json()["inserted"] as? Int == 1)
            let page = try await harness.store.usage.page(after: 0, limit: 10, tenant: nil, function: nil)
            #expect(page.records.contains(iadRecord))
            // Re-shipping stays idempotent.
            #expect(
                try await ship(iad, UsageBatch(host: "iad", records: [iadRecord])).json()["duplicates"] as? Int == 1)
        }
    }

    @Test func joinTokensWorkOnceForOneRoleAndAHostNameIsBoundToOneCredential() async throws {
        try await ControlPlaneHarness.with { harness in
            func joinToken(_ role: JoinRequest.Role) async throws -> String {
                let response = try await harness.request(
                    .POST, "/v1/join-tokens", token: harness.admin,
                    body: try ControlPlaneHarness.json(CreateJoinTokenRequest(role: role, expiresInS: 60)))
                #expect(response.status == 201)
                return try #require(try response.json()["token"] as? String)
            }
            func join(_ token: String, _ role: JoinRequest.Role, _ name: String) async throws -> TestResponse {
                try await harness.request(
                    .POST, "/v1/join", token: token,
                    body: try ControlPlaneHarness.json(JoinRequest(role: role, name: name)))
            }
            let token = try await joinToken(.host)
            // A join token is not an API credential.
            #expect(try await harness.request(.GET, "/v1/hosts", token: token).status == 401)
            #expect(try await join(token, .gateway, "gw").status == 403)
            let joined = try await join(token, .host, "fra")
            #expect(joined.status == 201)
            let credential = try #require(try joined.json()["credential"] as? String)
            #expect(credential.hasPrefix("verge_host_"))
            #expect(try await join(token, .host, "fra2").status == 401)
            // A second host cannot take the name fra while fra's credential is live.
            let second = try await joinToken(.host)
            #expect(try await join(second, .host, "fra").status == 409)
            let id = try #require(Credential(parsing: credential)?.id)
            #expect(try await harness.request(.DELETE, "/v1/tokens/\(id)", token: harness.admin).status == 200)
            #expect(try await join(second, .host, "fra").status == 201)

            // The gateway's credential reads the host list (and registers its host proofs) and nothing else.
            let gateway = try #require(
                try await join(try await joinToken(.gateway), .gateway, "edge").json()["credential"] as? String)
            #expect(try await harness.request(.GET, "/v1/hosts", token: gateway).status == 200)
            #expect(try await harness.request(.GET, "/v1/functions", token: gateway).status == 403)
            #expect(try await harness.request(.GET, "/v1/usage", token: gateway).status == 403)
            #expect(
                try await harness.request(
                    .POST, "/v1/internal/hosts/edge/sync", token: gateway,
                    body: try ControlPlaneHarness.json(
                        ControlPlaneHarness.hostStatus("edge", url: "http://127.0.0.1:1"))
                ).status == 403)
        }
    }
}
