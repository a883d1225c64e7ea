import Foundation
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeControlPlane

/// A gateway proves itself to each host with a proof only that host is told about: it registers the SHA-256 of its
/// proof for every host, and each host's sync answer lists only the hashes made for it, while the gateway's
/// credential is live.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct GatewayHostProofTests {
    static let path = "/v1/internal/gateway/host-proofs"

    static func registration(_ gateway: Credential, _ hosts: [String]) throws -> [UInt8] {
        try ControlPlaneHarness.json(
            HostProofRegistration(
                proofs: hosts.map { .init(host: $0, hash: gateway.hostProof(for: $0)!.hash) }))
    }

    /// The hashes a host's sync answer lists for the role `gateway`, with their credential ids.
    static func gatewayEntries(_ response: TestResponse) throws -> [String: String] {
        let callers = try #require(try response.json()["trusted_callers"] as? [[String: Any]])
        var entries: [String: String] = [:]
        for caller in callers where caller["role"] as? String == "gateway" {
            entries[try #require(caller["hash"] as? String)] = caller["credential_id"] as? String ?? ""
        }
        return entries
    }

    @Test func onlyAGatewayRegistersProofsAndBadInputIsRefusedLosingNothing() async throws {
        try await ControlPlaneHarness.with { harness in
            let gateway = try harness.controlPlane.issueGatewayCredential(label: "gw")
            let host = try harness.controlPlane.issueHostCredential(name: "fra").token
            let deploy = try await harness.token(defaultTenant, [.deploy])
            let body = try Self.registration(gateway, ["fra", "iad"])
            // Nobody but a gateway: no credential, the operator's, a tenant's, a host's, or a proof itself.
            #expect(try await harness.request(.PUT, Self.path, body: body).status == 401)
            for token in [harness.admin, deploy, host] {
                let refused = try await harness.request(.PUT, Self.path, token: token, body: body)
                #expect(refused.status == 403, "\(refused.text)")
            }
            let proof = gateway.hostProof(for: "fra")!.token
            #expect(try await harness.request(.PUT, Self.path, token: proof, body: body).status == 401)
            #expect(try await harness.store.hostProofCount(credentialID: gateway.id) == 0)

            // The gateway's own credential: accepted, and the same list again changes nothing (idempotent).
            for _ in 0..<2 {
                let accepted = try await harness.request(.PUT, Self.path, token: gateway.token, body: body)
                #expect(accepted.status == 200, "\(accepted.text)")
                #expect(try accepted.json()["registered"] as? Int == 2)
                #expect(try await harness.store.hostProofCount(credentialID: gateway.id) == 2)
            }

            // Bad input is refused with a message and leaves the registered list as it was.
            let hash = gateway.hostProof(for: "fra")!.hash
            func entries(_ pairs: [(String, String)]) throws -> [UInt8] {
                try ControlPlaneHarness.json(HostProofRegistration(proofs: pairs.map { .init(host: $0.0, hash: $0.1) }))
            }
            let tooMany = try entries(
                (0...HostProofRegistration.maximumProofs).map { ("h\($0)", hash) })
            let bad: [(String, [UInt8], Int)] = [
                ("not JSON", Array("{\"proofs\":[".utf8), 400),
                ("no list", Array("{}".utf8), 400),
                ("a bad host name", try entries([("Fra_1", hash)]), 400),
                ("an empty host name", try entries([("", hash)]), 400),
                ("a short hash", try entries([("fra", String(hash.dropLast()))]), 400),
                ("an upper-case hash", try entries([("fra", hash.uppercased())]), 400),
                ("a hash that is not hex", try entries([("fra", String(repeating: "g", count: 64))]), 400),
                ("a host twice", try entries([("fra", hash), ("fra", hash)]), 400),
                ("too many entries", tooMany, 400),
                ("a body over the limit", Array(repeating: 0x20, count: ControlPlaneAPI.maximumHostProofBody + 1), 413),
            ]
            for (what, body, status) in bad {
                let refused = try await harness.request(.PUT, Self.path, token: gateway.token, body: body)
                #expect(refused.status == status, "\(what): \(refused.status) \(refused.text)")
                #expect(refused.header("content-type")?.hasPrefix("application/json") == true, "\(what)")
                #expect(try await harness.store.hostProofCount(credentialID: gateway.id) == 2, "\(what)")
            }
            // An empty list is valid: it withdraws every proof of this gateway.
            let none = try await harness.request(.PUT, Self.path, token: gateway.token, body: try entries([]))
            #expect(none.status == 200)
            #expect(try await harness.store.hostProofCount(credentialID: gateway.id) == 0)
        }
    }

    @Test func eachHostIsToldOnlyItsOwnProofAndRevokingTheGatewayDropsThem() async throws {
        try await ControlPlaneHarness.with { harness in
            let fra = try harness.controlPlane.issueHostCredential(name: "fra").token
            let iad = try harness.controlPlane.issueHostCredential(name: "iad").token
            let gateway = try harness.controlPlane.issueGatewayCredential(label: "gw-1")
            let other = try harness.controlPlane.issueGatewayCredential(label: "gw-2")
            let put = try await harness.request(
                .PUT, Self.path, token: gateway.token, body: try Self.registration(gateway, ["fra", "iad"]))
            #expect(put.status == 200, "\(put.text)")

            // fra is told the hash of fra's proof, iad of iad's; neither the other's nor the gateway's own.
            let fraProof = gateway.hostProof(for: "fra")!
            let iadProof = gateway.hostProof(for: "iad")!
            #expect(fraProof.token.hasPrefix("verge_gwp_\(gateway.id)_") && fraProof != iadProof)
            let fraSync = try await harness.sync(fra, as: "fra", url: "http://127.0.0.1:2101")
            #expect(try Self.gatewayEntries(fraSync) == [fraProof.hash: gateway.id])
            #expect(!fraSync.text.contains(iadProof.hash) && !fraSync.text.contains(gateway.hash))
            let iadSync = try await harness.sync(iad, as: "iad", url: "http://127.0.0.1:2102")
            #expect(try Self.gatewayEntries(iadSync) == [iadProof.hash: gateway.id])
            // The control plane's entry is its proof for that host: not its credential, not another host's proof.
            let peer = harness.controlPlane.peerCredential
            #expect(iadSync.text.contains(peer.hostProof(for: "iad")!.hash))
            #expect(fraSync.text.contains(peer.hostProof(for: "fra")!.hash))
            #expect(!iadSync.text.contains(peer.hash) && !iadSync.text.contains(peer.hostProof(for: "fra")!.hash))

            // A second gateway's proofs are listed next to the first's; a new list replaces the old one.
            #expect(
                try await harness.request(
                    .PUT, Self.path, token: other.token, body: try Self.registration(other, ["fra"])
                ).status == 200)
            let both = try Self.gatewayEntries(try await harness.sync(fra, as: "fra", url: "http://127.0.0.1:2101"))
            #expect(both == [fraProof.hash: gateway.id, other.hostProof(for: "fra")!.hash: other.id])
            #expect(
                try await harness.request(
                    .PUT, Self.path, token: gateway.token, body: try Self.registration(gateway, ["iad"])
                ).status == 200)
            let replaced = try Self.gatewayEntries(
                try await harness.sync(fra, as: "fra", url: "http://127.0.0.1:2101"))
            #expect(replaced == [other.hostProof(for: "fra")!.hash: other.id])

            // Revoking a gateway's credential drops its proofs: the hosts' next sync no longer lists them, and the
            // revoked credential cannot register them again.
            #expect(try await harness.request(.DELETE, "/v1/tokens/\(other.id)", token: harness.admin).status == 200)
            #expect(try await harness.store.hostProofCount(credentialID: other.id) == 0)
            #expect(
                try Self.gatewayEntries(try await harness.sync(fra, as: "fra", url: "http://127.0.0.1:2101")).isEmpty)
            let again = try await harness.request(
                .PUT, Self.path, token: other.token, body: try Self.registration(other, ["fra"]))
            #expect(again.status == 401)
            #expect(try await harness.store.hostProofCount(credentialID: other.id) == 0)

            // A gateway credential replaced in process (`verge dev` restarting) takes its proofs with it.
            #expect(try await harness.store.hostProofCount(credentialID: gateway.id) == 1)
            _ = try harness.controlPlane.issueGatewayCredential(label: "gw-1")
            #expect(try await harness.store.hostProofCount(credentialID: gateway.id) == 0)
            #expect(
                try Self.gatewayEntries(try await harness.sync(iad, as: "iad", url: "http://127.0.0.1:2102")).isEmpty)
        }
    }

    /// A proof is bound to its gateway credential and to the host's name; only a gateway credential makes one.
    @Test func aProofIsBoundToItsGatewayAndItsHost() throws {
        let gateway = Credential.generate(.gateway)
        let proof = try #require(gateway.hostProof(for: "fra"))
        #expect(proof.kind == .hostProof && proof.id == gateway.id)
        #expect(Credential(parsing: proof.token) == proof)
        #expect(gateway.hostProof(for: "fra") == proof)
        #expect(gateway.hostProof(for: "iad") != proof)
        #expect(Credential.generate(.gateway).hostProof(for: "fra") != proof)
        // The control plane's proofs work the same way, with a kind of their own.
        let controlPlane = Credential.generate(.controlPlane)
        let peerProof = try #require(controlPlane.hostProof(for: "fra"))
        #expect(peerProof.kind == .controlPlaneProof && peerProof.token.hasPrefix("verge_cpp_\(controlPlane.id)_"))
        #expect(Credential(parsing: peerProof.token) == peerProof && controlPlane.hostProof(for: "iad") != peerProof)
        for kind in Credential.Kind.allCases where kind != .gateway && kind != .controlPlane {
            #expect(Credential.generate(kind).hostProof(for: "fra") == nil, "\(kind)")
        }
    }
}
