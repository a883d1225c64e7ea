import Testing
import VergeTestSupport

/// `verge gateway --geoip FILE` with a file it cannot open refuses to start and names the file.
@Suite struct GatewayGeoIPStartTests {
    @Test func theGatewayRefusesADatabaseItCannotOpen() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-gateway-geoip")
        defer { directory.remove() }
        let missing = directory.path + "/GeoLite2-City.mmdb"
        let result = try await CommandRunner.verge(
            [
                "gateway", "--bind", "127.0.0.1:0", "--control-plane", "http://127.0.0.1:9",
                "--credential-file", directory.path + "/credential", "--geoip", missing,
            ],
            environment: ["VERGE_JOIN_TOKEN": "verge_join_0000000000000000_unused"], timeout: .seconds(60))
        #expect(result.status != 0)
        #expect(result.stderr.contains("cannot open GeoIP database \(missing)"), "stderr: \(result.stderr)")
        #expect(result.stderr.contains("--geoip"), "stderr: \(result.stderr)")
    }
}
