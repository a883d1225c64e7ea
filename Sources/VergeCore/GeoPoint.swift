#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point on the Earth in decimal degrees.
public struct GeoPoint: Codable, Sendable, Hashable, CustomStringConvertible {
    public var latitude: Double
    public var longitude: Double

    /// Mean Earth radius used for great-circle distances (IUGG).
    public static let earthRadiusKm = 6371.0088

    /// Fails for coordinates outside [-90, 90] × [-180, 180] or not finite.
    public init?(latitude: Double, longitude: Double) {
        guard latitude.isFinite, longitude.isFinite, (-90...90).contains(latitude), (-180...180).contains(longitude)
        else { return nil }
        self.latitude = latitude
        self.longitude = longitude
    }

    /// For trusted constants only; traps on invalid coordinates.
    public init(_ latitude: Double, _ longitude: Double) {
        guard let point = GeoPoint(latitude: latitude, longitude: longitude) else {
            preconditionFailure("invalid coordinates \(latitude), \(longitude)")
        }
        self = point
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let latitude = try container.decode(Double.self, forKey: .latitude)
        let longitude = try container.decode(Double.self, forKey: .longitude)
        guard let point = GeoPoint(latitude: latitude, longitude: longitude) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "coordinates out of range: \(latitude), \(longitude)")
            )
        }
        self = point
    }

    /// Great-circle distance in kilometres (haversine formula).
    public func distanceKm(to other: GeoPoint) -> Double {
        let φ1 = latitude * .pi / 180
        let φ2 = other.latitude * .pi / 180
        let Δφ = (other.latitude - latitude) * .pi / 180
        let Δλ = (other.longitude - longitude) * .pi / 180
        let a = sin(Δφ / 2) * sin(Δφ / 2) + cos(φ1) * cos(φ2) * sin(Δλ / 2) * sin(Δλ / 2)
        return 2 * Self.earthRadiusKm * asin(min(1, a.squareRoot()))
    }

    public var description: String { "\(latitude),\(longitude)" }
}
