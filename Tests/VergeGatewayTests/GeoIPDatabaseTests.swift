import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeGateway

/// Real `.mmdb` files written by `scripts/make-test-mmdb` (mmdb-writer), read through libmaxminddb.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct GeoIPDatabaseTests {
    static let singapore = TestGeoIPDatabase.Network.city(
        "203.0.113.0/24", "Singapore", country: "SG", latitude: 1.29, longitude: 103.85)
    static let newYork = TestGeoIPDatabase.Network.city(
        "198.51.100.0/24", "New York", country: "US", latitude: 40.71, longitude: -74.01)
    static let japan = TestGeoIPDatabase.Network.country("2001:db8:5::/48", "JP")
    static let logger = Logger(label: "test")

    static let hosts = [
        ("fra", GeoPoint(50.11, 8.68)), ("iad", GeoPoint(39.04, -77.49)), ("sin", GeoPoint(1.35, 103.82)),
    ]

    private static func directory() -> HostDirectory {
        let directory = HostDirectory(unhealthyThreshold: 2)
        directory.update(
            hosts.map { name, location in
                HostSummary(
                    name: name, url: "http://\(name).internal", location: location, healthy: true, lastSeenMs: 1,
                    warmWorkers: 0, unshippedRecords: 0,
                    functions: [
                        HostStatus.FunctionStatus(
                            tenant: "default", name: "hello", version: "v1", warmWorkers: 0, idleWorkers: 0,
                            busyWorkers: 0, queuedCalls: 0, workerPIDs: [])
                    ], isolation: .sandbox)
            })
        return directory
    }

    private static func withDatabase<T>(
        _ networks: [TestGeoIPDatabase.Network], _ body: (String, TemporaryDirectory) async throws -> T
    ) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "verge-geoip")
        defer { directory.remove() }
        let path = directory.path + "/test.mmdb"
        try await TestGeoIPDatabase.write(networks, to: path)
        return try await body(path, directory)
    }

    @Test func readsCitiesAndCountriesThroughLibmaxminddb() async throws {
        try await Self.withDatabase([Self.singapore, Self.japan]) { path, _ in
            let database = try MaxMindDatabase(path: path)
            #expect(database.databaseType == "Verge-Test-City")
            #expect(
                database.lookup(IPAddress("203.0.113.77")!)
                    == GeoIPMatch(location: GeoPoint(1.29, 103.85), countryCode: "SG"))
            #expect(database.lookup(IPAddress("2001:db8:5:1::9")!) == GeoIPMatch(location: nil, countryCode: "JP"))
            #expect(database.lookup(IPAddress("192.0.2.1")!) == nil)
            #expect(database.lookup(IPAddress("::1")!) == nil)
        }
    }

    @Test func aClientInTheDatabaseIsRoutedToTheHostNearestItsCity() async throws {
        try await Self.withDatabase([Self.singapore, Self.newYork, Self.japan]) { path, _ in
            let geoIP = try GeoIPService(databasePath: path, logger: Self.logger)
            #expect(geoIP.kind == .maxmind)
            let locator = ClientLocator(
                trustedProxies: [CIDR("127.0.0.0/8")!], defaultLocation: GeoPoint(50.11, 8.68), geoIP: geoIP)
            let directory = Self.directory()
            let hello = FunctionRef(tenant: "default", name: "hello")
            // Straight from the client's socket, and through a trusted hop that names it in x-forwarded-for.
            let cases: [(String, String?, String, LocatedClient.Source)] = [
                ("203.0.113.9", nil, "sin", .geoip),
                ("198.51.100.20", nil, "iad", .geoip),
                ("127.0.0.1", "203.0.113.9", "sin", .geoip),
                ("127.0.0.1", "192.0.2.1, 198.51.100.20", "iad", .geoip),
                ("2001:db8:5::1", nil, "sin", .country),  // Japan's centroid is nearest Singapore of the three.
                ("192.0.2.1", nil, "fra", .default),
            ]
            for (peer, forwarded, expected, source) in cases {
                var headers = HTTPFields()
                if let forwarded { headers[HTTPField.Name("x-forwarded-for")!] = forwarded }
                let client = locator.locate(headers: headers, peer: try SocketAddress(ipAddress: peer, port: 1))
                #expect(client.source == source, "peer \(peer) xff \(forwarded ?? "-")")
                #expect(
                    directory.routes(for: hello, from: client.location).first?.host == expected,
                    "peer \(peer) xff \(forwarded ?? "-")")
            }
        }
    }

    @Test func anUntrustedPeersForwardedForIsIgnored() async throws {
        try await Self.withDatabase([Self.singapore, Self.newYork]) { path, _ in
            let geoIP = try GeoIPService(databasePath: path, logger: Self.logger)
            let locator = ClientLocator(
                trustedProxies: [CIDR("127.0.0.0/8")!], defaultLocation: GeoPoint(50.11, 8.68), geoIP: geoIP)
            var headers = HTTPFields()
            headers[HTTPField.Name("x-forwarded-for")!] = "203.0.113.9"
            let client = locator.locate(headers: headers, peer: try SocketAddress(ipAddress: "198.51.100.20", port: 1))
            #expect(client.address == IPAddress("198.51.100.20"))
            #expect(client.countryCode == "US")
            #expect(
                Self.directory().routes(for: FunctionRef(tenant: "default", name: "hello"), from: client.location)
                    .first?.host == "iad")
        }
    }

    @Test func aChangedDatabaseIsPickedUpABrokenOneKeepsTheOld() async throws {
        try await Self.withDatabase([Self.singapore]) { path, directory in
            let geoIP = try GeoIPService(databasePath: path, reloadInterval: .milliseconds(20), logger: Self.logger)
            let address = IPAddress("203.0.113.9")!
            #expect(geoIP.lookup(address)?.countryCode == "SG")
            #expect(!geoIP.reloadIfChanged())

            // A half-written file (garbage renamed over the database): refused, the old one keeps answering.
            let garbage = directory.path + "/garbage"
            try Data("not a maxmind database".utf8).write(to: URL(fileURLWithPath: garbage))
            #expect(rename(garbage, path) == 0)
            #expect(!geoIP.reloadIfChanged())
            #expect(geoIP.lookup(address)?.countryCode == "SG")
            #expect(geoIP.reloads == 0)

            // A good new file is swapped in by the background service, with lookups going on meanwhile.
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await geoIP.run() }
                try await TestGeoIPDatabase.write(
                    [.city("203.0.113.0/24", "Tokyo", country: "JP", latitude: 35.68, longitude: 139.69)], to: path)
                let reloaded = try await eventually { geoIP.lookup(address)?.countryCode == "JP" }
                #expect(reloaded)
                #expect(geoIP.reloads == 1)
                #expect(geoIP.lookup(address)?.location == GeoPoint(35.68, 139.69))
                group.cancelAll()
            }
        }
    }

    @Test func aConfiguredDatabaseThatCannotBeOpenedRefusesToStart() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-geoip")
        defer { directory.remove() }
        let missing = directory.path + "/missing.mmdb"
        let error = try #require(throws: VergeError.self) {
            try GeoIPService(databasePath: missing, logger: Self.logger)
        }
        #expect(error.message.contains(missing))
        #expect(error.message.contains("geoip_database"))
        let broken = directory.path + "/broken.mmdb"
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: broken))
        #expect(throws: VergeError.self) { try GeoIPService(databasePath: broken, logger: Self.logger) }
    }

    @Test func withoutADatabaseTheTorCountryFilesLocateByCountry() throws {
        let directory = try TemporaryDirectory(prefix: "verge-torgeoip")
        defer { directory.remove() }
        let v4 = directory.path + "/geoip"
        let v6 = directory.path + "/geoip6"
        // 203.0.113.0 = 3405803776; 198.51.100.0 = 3325256704.
        try Data(
            """
            # a comment
            3325256704,3325256959,US
            3405803776,3405804031,SG
            3405804032,3405804287,??
            garbage line
            """.utf8
        ).write(to: URL(fileURLWithPath: v4))
        try Data("2001:db8:5::,2001:db8:5:ffff:ffff:ffff:ffff:ffff,JP\n".utf8).write(to: URL(fileURLWithPath: v6))
        let geoIP = try GeoIPService(databasePath: nil, fallbackIPv4: v4, fallbackIPv6: v6, logger: Self.logger)
        #expect(geoIP.kind == .torGeoIP)
        #expect(geoIP.lookup(IPAddress("203.0.113.200")!) == nil)  // not loaded yet: the default applies
        #expect(!geoIP.isReady && geoIP.summary.contains("loading"))
        geoIP.loadFallbackIfNeeded()
        #expect(geoIP.isReady && !geoIP.summary.contains("loading"))
        #expect(geoIP.summary.contains("tor-geoipdb"))
        #expect(geoIP.lookup(IPAddress("203.0.113.200")!) == GeoIPMatch(location: nil, countryCode: "SG"))
        #expect(geoIP.lookup(IPAddress("198.51.100.0")!)?.countryCode == "US")
        #expect(geoIP.lookup(IPAddress("198.51.100.255")!)?.countryCode == "US")
        #expect(geoIP.lookup(IPAddress("198.51.101.0")!) == nil)
        #expect(geoIP.lookup(IPAddress("203.0.114.1")!) == nil)  // `??` is no country
        #expect(geoIP.lookup(IPAddress("2001:db8:5:7::1")!)?.countryCode == "JP")
        #expect(geoIP.lookup(IPAddress("2001:db8:6::1")!) == nil)

        let locator = ClientLocator(trustedProxies: [], defaultLocation: GeoPoint(50.11, 8.68), geoIP: geoIP)
        let client = locator.locate(headers: [:], peer: try SocketAddress(ipAddress: "203.0.113.9", port: 1))
        #expect(client.source == .country && client.location == CountryCentroids.point(for: "SG"))
    }

    @Test func withNeitherTheGatewayStartsOnTheDefaultAndSaysSo() throws {
        let geoIP = try GeoIPService(
            databasePath: nil, fallbackIPv4: "/nonexistent/geoip", fallbackIPv6: "/nonexistent/geoip6",
            logger: Self.logger)
        #expect(geoIP.kind == .none)
        #expect(geoIP.summary.contains("default location only"))
        #expect(geoIP.lookup(IPAddress("8.8.8.8")!) == nil)
    }

    @Test func anUnreadableFallbackFallsBackToTheDefault() throws {
        let directory = try TemporaryDirectory(prefix: "verge-torgeoip")
        defer { directory.remove() }
        let v4 = directory.path + "/geoip"
        try Data("# nothing but comments\n".utf8).write(to: URL(fileURLWithPath: v4))
        let geoIP = try GeoIPService(databasePath: nil, fallbackIPv4: v4, fallbackIPv6: v4 + "6", logger: Self.logger)
        #expect(geoIP.kind == .torGeoIP)
        geoIP.loadFallbackIfNeeded()
        #expect(geoIP.kind == .none)
        #expect(geoIP.summary.contains("default location only"))
    }

    @Test(
        .enabled(if: FileManager.default.fileExists(atPath: TorGeoIPDatabase.debianIPv4), "needs Debian's tor-geoipdb"))
    func debiansTorGeoIPDatabaseLoads() async throws {
        // Parsing 660,000 lines takes seconds in a debug build: off the cooperative pool.
        let (ranges, google, loopback) = try await blocking {
            let database = try TorGeoIPDatabase()
            return (
                database.rangeCount, database.lookup(IPAddress("8.8.8.8")!)?.countryCode,
                database.lookup(IPAddress("127.0.0.1")!)
            )
        }
        #expect(ranges > 100_000)
        // Google's public resolver has been in the US in every edition of the data.
        #expect(google == "US")
        #expect(loopback == nil)
    }
}
