import VergeCore

/// What an IP-address database says about one address.
public struct GeoIPMatch: Sendable, Equatable {
    /// Coordinates from the database itself (a city-level database).
    public var location: GeoPoint?
    /// ISO 3166-1 alpha-2 code, upper case.
    public var countryCode: String?

    public init(location: GeoPoint?, countryCode: String?) {
        self.location = location
        self.countryCode = countryCode
    }
}

/// Maps a client address to a place. Implementations answer from memory (or a memory-mapped file) and never block.
public protocol IPGeolocator: Sendable {
    func lookup(_ address: IPAddress) -> GeoIPMatch?
}
