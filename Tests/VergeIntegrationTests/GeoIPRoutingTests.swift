import Foundation
import Testing
import VergeTestSupport

/// `verge dev --geoip FILE`: clients located by address through a real MaxMind DB, end to end.
@Suite(.serialized, .cluster, .timeLimit(.minutes(5)))
struct GeoIPRoutingTests {
    static let singapore = TestGeoIPDatabase.Network.city(
        "203.0.113.0/24", "Singapore", country: "SG", latitude: 1.29, longitude: 103.85)
    static let newYork = TestGeoIPDatabase.Network.city(
        "198.51.100.0/24", "New York", country: "US", latitude: 40.71, longitude: -74.01)

    @Test func clientsAreRoutedByTheirAddressAndAChangedDatabaseIsPickedUp() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-geoip")
        defer { directory.remove() }
        let database = directory.path + "/city.mmdb"
        try await TestGeoIPDatabase.write([Self.singapore, Self.newYork], to: database)
        try await LocalClusterProcess.with(extraArguments: ["--geoip", database]) { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)

            // The local cluster trusts loopback, so the test client's x-forwarded-for names the client.
            let fromSingapore = try await TestHTTP.request(
                cluster.gatewayURL + "/echo", headers: [("x-forwarded-for", "203.0.113.9")])
            #expect(fromSingapore.status == 200)
            #expect(fromSingapore.header("x-verge-host") == "sin")
            let client = try #require(try fromSingapore.json()["client"] as? [String: Any])
            #expect(client["source"] as? String == "geoip")
            #expect(client["latitude"] as? Double == 1.29)
            #expect(client["country"] as? String == "SG")
            #expect(client["address"] as? String == "203.0.113.9")
            let distance = try #require(client["distance_km"] as? Double)
            #expect(distance > 0 && distance < 10, "Singapore to the sin host: \(distance) km")
            let timing = fromSingapore.headers["server-timing"].joined(separator: ", ")
            #expect(timing.contains("desc=\"sin "), "server-timing: \(timing)")
            #expect(timing.contains("geoip SG"), "server-timing: \(timing)")

            let fromNewYork = try await TestHTTP.request(
                cluster.gatewayURL + "/echo", headers: [("x-forwarded-for", "192.0.2.1, 198.51.100.20")])
            #expect(fromNewYork.header("x-verge-host") == "iad")

            let health = try await TestHTTP.get(cluster.gatewayURL + "/_verge/health").json()
            #expect(health["locator"] as? String == "maxmind")
            #expect(health["geoip_database"] as? String == database)

            // The database is replaced (written beside it and renamed over it): Singapore's network moves to New York.
            try await TestGeoIPDatabase.write(
                [.city("203.0.113.0/24", "New York", country: "US", latitude: 40.71, longitude: -74.01)], to: database)
            let moved = try await eventually(timeout: .seconds(20)) {
                let response = try await TestHTTP.request(
                    cluster.gatewayURL + "/echo", headers: [("x-forwarded-for", "203.0.113.9")])
                return response.header("x-verge-host") == "iad"
            }
            #expect(moved)
            #expect(cluster.log.contains("GeoIP database reloaded"))
        }
    }

    @Test func anUntrustedClientsForwardedForAndGeoHeadersAreIgnored() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-geoip")
        defer { directory.remove() }
        let database = directory.path + "/city.mmdb"
        try await TestGeoIPDatabase.write([Self.singapore], to: database)
        let config = directory.path + "/cluster.json"
        // Nobody is trusted: the test client's claims must change nothing.
        try Data(#"{"trusted_proxies": [], "geoip_database": "\#(database)"}"#.utf8)
            .write(to: URL(fileURLWithPath: config))
        try await LocalClusterProcess.with(extraArguments: ["--config", config]) { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let response = try await TestHTTP.request(
                cluster.gatewayURL + "/echo",
                headers: [
                    ("x-forwarded-for", "203.0.113.9"), ("cloudfront-viewer-latitude", "1.29"),
                    ("cloudfront-viewer-longitude", "103.85"), ("x-verge-client-source", "header"),
                ])
            #expect(response.status == 200)
            #expect(response.header("x-verge-host") == "fra")
            let client = try #require(try response.json()["client"] as? [String: Any])
            #expect(client["source"] as? String == "default")
            let headers = try #require(try response.json()["headers"] as? [String: Any])
            #expect(headers["cloudfront-viewer-latitude"] == nil)
        }
    }

    @Test func aFunctionPinnedToRegionsRunsOnlyThere() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-regions")
        defer { directory.remove() }
        let function = try directory.copy(Paths.fixtureFunction("echo"), as: "pinned")
        try Data(#"{"name": "pinned", "runtime": "python", "entry": "main.py", "regions": ["sin", "iad"]}"#.utf8)
            .write(to: URL(fileURLWithPath: function + "/verge.json"))
        try await LocalClusterProcess.with { cluster in
            let deploy = try await cluster.deploy(function)
            #expect(deploy.status == 0, "deploy failed: \(deploy.stderr)")
            // From Paris the nearest host is fra, but the function may run only in sin and iad: iad is nearer.
            let fromParis = try await TestHTTP.get(cluster.gatewayURL + "/pinned", from: (48.85, 2.35))
            #expect(fromParis.status == 200)
            #expect(fromParis.header("x-verge-host") == "iad")
            let fromTokyo = try await TestHTTP.get(cluster.gatewayURL + "/pinned", from: (35.68, 139.69))
            #expect(fromTokyo.header("x-verge-host") == "sin")
            // fra was never given the function: it neither installed it nor answers for it.
            let hosts = try await cluster.verge(["hosts", "--format", "json"])
            let list = try JSONSerialization.jsonObject(with: Data(hosts.stdout.utf8)) as? [[String: Any]] ?? []
            let running = Dictionary(
                uniqueKeysWithValues: list.map { host in
                    (
                        host["name"] as? String ?? "",
                        (host["functions"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                    )
                })
            #expect(running["fra"]?.contains("pinned") == false, "\(running)")
            #expect(running["iad"]?.contains("pinned") == true && running["sin"]?.contains("pinned") == true)
            let direct = try await TestHTTP.get(try #require(cluster.hostURLs["fra"]) + "/pinned")
            #expect(direct.status == 404)
        }
    }

    /// Hosts fetch only the bundles placed on them: after a redeploy with other `regions` the function moves to
    /// the new region's hosts (which fetch the new version), and a rollback brings it back.
    @Test func aPinnedFunctionMovesWithARegionChangeAndARollback() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-regions")
        defer { directory.remove() }
        let function = try directory.copy(Paths.fixtureFunction("echo"), as: "pinned")
        func pin(_ regions: String) throws {
            try Data(#"{"name": "pinned", "runtime": "python", "entry": "main.py", "regions": [\#(regions)]}"#.utf8)
                .write(to: URL(fileURLWithPath: function + "/verge.json"))
        }
        try await LocalClusterProcess.with { cluster in
            /// Host name → the version of `pinned` it runs, from `verge hosts`.
            func running() async throws -> [String: String] {
                let hosts = try await cluster.verge(["hosts", "--format", "json"])
                let list = try JSONSerialization.jsonObject(with: Data(hosts.stdout.utf8)) as? [[String: Any]] ?? []
                var versions: [String: String] = [:]
                for host in list {
                    for status in host["functions"] as? [[String: Any]] ?? []
                    where status["name"] as? String == "pinned" {
                        versions[host["name"] as? String ?? ""] = status["version"] as? String
                    }
                }
                return versions
            }
            func live() async throws -> String {
                let versions = try await cluster.verge(["versions", "pinned", "--format", "json"])
                let list = try JSONSerialization.jsonObject(with: Data(versions.stdout.utf8)) as? [[String: Any]] ?? []
                return try #require(list.first { $0["live"] as? Bool == true }?["version"] as? String)
            }
            func servedBy() async throws -> String? {
                let response = try await TestHTTP.get(cluster.gatewayURL + "/pinned", from: (48.85, 2.35))
                #expect(response.status == 200, "\(response.text) from \(response.header("x-verge-host") ?? "the gateway")")
                return response.header("x-verge-host")
            }

            try pin(#""fra""#)
            #expect(try await cluster.deploy(function).status == 0)
            let first = try await live()
            #expect(try await eventually(timeout: .seconds(20)) { try await running() == ["fra": first] })
            #expect(try await servedBy() == "fra")

            // Moved to iad: iad fetches the new version, fra drops the function, and nothing else runs it.
            try pin(#""iad""#)
            #expect(try await cluster.deploy(function).status == 0)
            let second = try await live()
            #expect(second != first)
            var last: [String: String] = [:]
            let moved = try await eventually(timeout: .seconds(20)) {
                last = try await running()
                return last == ["iad": second]
            }
            #expect(moved, "\(last)")
            #expect(try await servedBy() == "iad")

            // Rolled back: the first version, pinned to fra, is live again and back on fra only.
            let rollback = try await cluster.verge(["rollback", "pinned"])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            let back = try await eventually(timeout: .seconds(20)) {
                last = try await running()
                return last == ["fra": first]
            }
            #expect(back, "\(last)")
            #expect(try await servedBy() == "fra")
            // Every host fetched all it was told to run: no fetch was refused on the way.
            let refused = cluster.log.split(separator: "\n").filter { $0.contains("cannot install function") }
            #expect(refused.isEmpty, "\(refused)")
        }
    }

    @Test(
        .enabled(if: FileManager.default.fileExists(atPath: "/usr/share/tor/geoip"), "needs Debian's tor-geoipdb"))
    func withoutADatabaseTorGeoIPLocatesClientsByCountry() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let health = try await TestHTTP.get(cluster.gatewayURL + "/_verge/health").json()
            #expect(health["locator"] as? String == "tor-geoipdb")
            // Google's public resolver is in the US in tor-geoipdb's data: placed at the US centroid, nearest iad.
            // The fallback loads in the background after start-up, so the first calls may still get the default.
            var last: TestResponse?
            let located = try await eventually(timeout: .seconds(20)) {
                last = try await TestHTTP.request(
                    cluster.gatewayURL + "/echo", headers: [("x-forwarded-for", "8.8.8.8")])
                return (try last?.json()["client"] as? [String: Any])?["source"] as? String == "country"
            }
            #expect(located)
            let ready = try await TestHTTP.get(cluster.gatewayURL + "/_verge/health").json()
            #expect(ready["locator_ready"] as? Bool == true)
            #expect(last?.header("x-verge-host") == "iad")
            #expect((try last?.json()["client"] as? [String: Any])?["country"] as? String == "US")
        }
    }

    @Test func aConfiguredDatabaseThatCannotBeOpenedStopsTheStart() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-geoip")
        defer { directory.remove() }
        let missing = directory.path + "/missing.mmdb"
        let result = try await CommandRunner.verge(
            [
                "dev", "--gateway", "127.0.0.1:0", "--api", "127.0.0.1:0", "--data", directory.path + "/data",
                "--geoip", missing,
            ], timeout: .seconds(60))
        #expect(result.status != 0)
        #expect(result.stderr.contains("cannot open GeoIP database \(missing)"), "stderr: \(result.stderr)")
    }
}
