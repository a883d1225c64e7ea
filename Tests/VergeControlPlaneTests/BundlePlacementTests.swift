import Foundation
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeControlPlane

/// A host gets what it runs: the bundle and the secrets of a function go only to the hosts its sync answer lists
/// it for (live, and placed there by its manifest's `regions`). Anything else looks like a version that does not
/// exist, so a host learns nothing of code it is not given.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct BundlePlacementTests {
    /// A version nobody uploaded: well-formed, unknown.
    static let unknownVersion = String(repeating: "0", count: 64)

    /// Two hosts, `fra-2` (region `fra`) and `iad`, and the admin's upload of `pinned` with a secret.
    struct Cluster {
        let harness: ControlPlaneHarness
        let fra: String
        let iad: String

        init(_ harness: ControlPlaneHarness) async throws {
            self.harness = harness
            fra = try harness.controlPlane.issueHostCredential(name: "fra-2").token
            iad = try harness.controlPlane.issueHostCredential(name: "iad").token
            #expect(try await harness.sync(fra, as: "fra-2", url: "http://127.0.0.1:2201").status == 200)
            #expect(try await harness.sync(iad, as: "iad", url: "http://127.0.0.1:2202").status == 200)
        }

        /// Uploads `pinned` pinned to `regions`; returns its version and the archive sent.
        func deploy(variant: Int, regions: [String]) async throws -> (version: String, archive: [UInt8]) {
            let archive = try ControlPlaneHarness.bundle("pinned", variant, regions: regions)
            let response = try await harness.request(
                .POST, "/v1/functions/pinned/versions", token: harness.admin, body: archive)
            #expect(response.status == 201, "\(response.text)")
            return (try #require(try response.json()["version"] as? String), archive)
        }

        func bundle(_ version: String, as host: String) async throws -> TestResponse {
            try await harness.request(.GET, "/v1/bundles/\(version)", token: token(host))
        }

        func secrets(_ function: String, as host: String) async throws -> TestResponse {
            try await harness.request(.GET, "/v1/internal/hosts/\(host)/secrets/\(function)", token: token(host))
        }

        /// The versions `host`'s sync answer lists.
        func listed(_ host: String) async throws -> [String] {
            let port = host == "iad" ? 2202 : 2201
            let answer = try await harness.sync(token(host), as: host, url: "http://127.0.0.1:\(port)")
            #expect(answer.status == 200, "\(answer.text)")
            return try #require(try answer.json()["functions"] as? [[String: Any]]).compactMap {
                $0["version"] as? String
            }
        }

        func token(_ host: String) -> String { host == "iad" ? iad : fra }

        /// `response` is the 404 of a version that does not exist, word for word (but for the version itself).
        func expectLooksUnknown(
            _ response: TestResponse, version: String, as host: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) async throws {
            let unknown = try await bundle(BundlePlacementTests.unknownVersion, as: host)
            #expect(unknown.status == 404, sourceLocation: sourceLocation)
            #expect(response.status == 404, "\(response.text)", sourceLocation: sourceLocation)
            #expect(
                response.text.replacingOccurrences(of: version, with: BundlePlacementTests.unknownVersion)
                    == unknown.text,
                "\(response.text) vs \(unknown.text)", sourceLocation: sourceLocation)
            #expect(response.header("content-type") == unknown.header("content-type"), sourceLocation: sourceLocation)
            let error = try #require(try response.json()["error"] as? [String: Any], sourceLocation: sourceLocation)
            #expect(error["code"] as? String == "not_found", sourceLocation: sourceLocation)
        }

        /// Every version `host`'s sync answer lists can be fetched, byte for byte what was uploaded.
        func expectEverythingListedFetches(_ host: String, _ archives: [String: [UInt8]]) async throws {
            for version in try await listed(host) {
                let response = try await bundle(version, as: host)
                #expect(response.status == 200, "\(host) cannot fetch listed \(version): \(response.text)")
                if let archive = archives[version] { #expect(response.body == archive) }
            }
        }
    }

    @Test func aHostOutsideAPinnedFunctionsRegionsGetsNeitherItsBundleNorItsSecrets() async throws {
        try await ControlPlaneHarness.with { harness in
            let cluster = try await Cluster(harness)
            let pinned = try await cluster.deploy(variant: 1, regions: ["fra"])
            let anywhere = try await harness.upload("anywhere", variant: 1, token: harness.admin)
            let anywhereVersion = try #require(try anywhere.json()["version"] as? String)
            for function in ["pinned", "anywhere"] {
                let secret = try await harness.request(
                    .PUT, "/v1/functions/\(function)/secrets/API_KEY", token: harness.admin,
                    body: Array("value-of-\(function)".utf8))
                #expect(secret.status == 200, "\(secret.text)")
            }

            // Inside the region: the bundle (exactly what was uploaded) and the secrets.
            let inside = try await cluster.bundle(pinned.version, as: "fra-2")
            #expect(inside.status == 200, "\(inside.text)")
            #expect(inside.header("content-type") == "application/zip")
            #expect(inside.body == pinned.archive)
            let insideSecrets = try await cluster.secrets("pinned", as: "fra-2")
            #expect(insideSecrets.status == 200 && insideSecrets.text.contains("value-of-pinned"))

            // Outside: the same 404 as a version nobody uploaded, and no secret.
            try await cluster.expectLooksUnknown(
                try await cluster.bundle(pinned.version, as: "iad"), version: pinned.version, as: "iad")
            let outsideSecrets = try await cluster.secrets("pinned", as: "iad")
            #expect(outsideSecrets.status == 404 && !outsideSecrets.text.contains("value-of"))

            // A function that may run anywhere reaches both, and each host can fetch all its sync lists.
            for host in ["fra-2", "iad"] {
                #expect(try await cluster.bundle(anywhereVersion, as: host).status == 200)
                #expect(try await cluster.secrets("anywhere", as: host).text.contains("value-of-anywhere"))
            }
            try await cluster.expectEverythingListedFetches("fra-2", [pinned.version: pinned.archive])
            try await cluster.expectEverythingListedFetches("iad", [:])
            #expect(try await cluster.listed("iad") == [anywhereVersion])

            // Malformed versions answer in the same shape.
            let malformed = try await cluster.bundle("not-a-version", as: "fra-2")
            #expect(malformed.status == 404)
            #expect((try malformed.json()["error"] as? [String: Any])?["code"] as? String == "not_found")
        }
    }

    @Test func aRegionChangeOrARollbackMovesTheBundleAndSecretsWithThePlacement() async throws {
        try await ControlPlaneHarness.with { harness in
            let cluster = try await Cluster(harness)
            let first = try await cluster.deploy(variant: 1, regions: ["fra"])
            let secret = try await harness.request(
                .PUT, "/v1/functions/pinned/secrets/API_KEY", token: harness.admin, body: Array("the-value".utf8))
            #expect(secret.status == 200, "\(secret.text)")
            #expect(try await cluster.bundle(first.version, as: "fra-2").status == 200)

            // Redeployed pinned to iad: iad gets the new version and the secrets; fra-2 gets neither the new
            // version nor the old one (no longer live), nor the secrets.
            let second = try await cluster.deploy(variant: 2, regions: ["iad"])
            let moved = try await cluster.bundle(second.version, as: "iad")
            #expect(moved.status == 200 && moved.body == second.archive, "\(moved.text)")
            #expect(try await cluster.secrets("pinned", as: "iad").text.contains("the-value"))
            try await cluster.expectLooksUnknown(
                try await cluster.bundle(second.version, as: "fra-2"), version: second.version, as: "fra-2")
            try await cluster.expectLooksUnknown(
                try await cluster.bundle(first.version, as: "fra-2"), version: first.version, as: "fra-2")
            try await cluster.expectLooksUnknown(
                try await cluster.bundle(first.version, as: "iad"), version: first.version, as: "iad")
            #expect(try await cluster.secrets("pinned", as: "fra-2").status == 404)
            #expect(try await cluster.listed("fra-2").isEmpty)
            try await cluster.expectEverythingListedFetches("iad", [second.version: second.archive])

            // Rolled back to the first version (pinned to fra): placement follows the live version's manifest.
            let rollback = try await harness.request(
                .POST, "/v1/functions/pinned/rollback", token: harness.admin,
                body: Array(#"{"version":"1"}"#.utf8))
            #expect(rollback.status == 200, "\(rollback.text)")
            let back = try await cluster.bundle(first.version, as: "fra-2")
            #expect(back.status == 200 && back.body == first.archive, "\(back.text)")
            #expect(try await cluster.secrets("pinned", as: "fra-2").text.contains("the-value"))
            try await cluster.expectLooksUnknown(
                try await cluster.bundle(second.version, as: "iad"), version: second.version, as: "iad")
            #expect(try await cluster.secrets("pinned", as: "iad").status == 404)
            try await cluster.expectEverythingListedFetches("fra-2", [first.version: first.archive])
            #expect(try await cluster.listed("iad").isEmpty)

            // A deleted function's bundles go to no host at all.
            #expect(try await harness.request(.DELETE, "/v1/functions/pinned", token: harness.admin).status == 200)
            try await cluster.expectLooksUnknown(
                try await cluster.bundle(first.version, as: "fra-2"), version: first.version, as: "fra-2")
        }
    }

    /// Bundles are for hosts: no API token gets one, its own tenant's or another's, and the answer is the same
    /// for a real version and one that does not exist, so a token cannot even learn that a version exists.
    @Test func noTenantsTokenGetsABundleOrLearnsThatItExists() async throws {
        try await ControlPlaneHarness.with { harness in
            _ = try await harness.store.createTenant("acme")
            _ = try await harness.store.createTenant("globex")
            let acme = try await harness.token("acme", [.deploy])
            let upload = try await harness.upload("shared", variant: 1, token: acme)
            #expect(upload.status == 201, "\(upload.text)")
            let version = try #require(try upload.json()["version"] as? String)
            let host = try harness.controlPlane.issueHostCredential(name: "fra").token
            #expect(try await harness.request(.GET, "/v1/bundles/\(version)", token: host).status == 200)

            let callers: [(String, String)] = [
                ("globex deploy", try await harness.token("globex", [.deploy])),
                ("acme deploy", acme),
                ("acme usage:read", try await harness.token("acme", [.usageRead])),
                ("operator admin", harness.admin),
                ("gateway", try harness.controlPlane.issueGatewayCredential(label: "gw").token),
            ]
            for (caller, token) in callers {
                let real = try await harness.request(.GET, "/v1/bundles/\(version)", token: token)
                let unknown = try await harness.request(.GET, "/v1/bundles/\(Self.unknownVersion)", token: token)
                #expect(real.status == 403, "\(caller): \(real.text)")
                #expect(real.header("content-type") != "application/zip", "\(caller) got the archive")
                #expect(real.text == unknown.text && real.status == unknown.status, "\(caller): \(real.text)")
            }
        }
    }
}
