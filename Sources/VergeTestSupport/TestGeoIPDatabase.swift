import Foundation

/// Writes small MaxMind DB files for tests with `scripts/make-test-mmdb` (the `mmdb-writer` package from PyPI, in a
/// virtual environment the script sets up once). Never a downloaded database.
public enum TestGeoIPDatabase {
    /// One network of a test database: a city (with coordinates) or only a country.
    public struct Network: Sendable {
        public var network: String
        public var country: String?
        public var city: String?
        public var latitude: Double?
        public var longitude: Double?

        public static func city(
            _ network: String, _ city: String, country: String, latitude: Double, longitude: Double
        ) -> Network {
            Network(network: network, country: country, city: city, latitude: latitude, longitude: longitude)
        }

        public static func country(_ network: String, _ country: String) -> Network {
            Network(network: network, country: country)
        }

        var json: [String: Any] {
            var object: [String: Any] = ["network": network]
            if let country { object["country"] = country }
            if let city { object["city"] = city }
            if let latitude, let longitude {
                object["latitude"] = latitude
                object["longitude"] = longitude
            }
            return object
        }
    }

    /// Writes a database holding `networks` to `path` (atomically: written beside it, then renamed over it).
    public static func write(
        _ networks: [Network], to path: String, databaseType: String = "Verge-Test-City"
    )
        async throws
    {
        let spec = path + ".spec.json"
        let object: [String: Any] = ["database_type": databaseType, "networks": networks.map(\.json)]
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: spec))
        defer { try? FileManager.default.removeItem(atPath: spec) }
        let result = try await CommandRunner.run(
            Paths.repository + "/scripts/make-test-mmdb", [spec, path], timeout: .seconds(300))
        guard result.status == 0 else {
            throw TestFailure("scripts/make-test-mmdb failed (\(result.status)): \(result.stderr)")
        }
    }
}
