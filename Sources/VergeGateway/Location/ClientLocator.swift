import Foundation
import HTTPTypes
import NIOCore
import VergeCore

/// Where the gateway believes a client is, and why.
public struct LocatedClient: Sendable, Equatable {
    public enum Source: String, Sendable {
        /// A trusted proxy's geo headers (`cloudfront-viewer-*`, `cf-ip*`).
        case header
        /// The client address's entry in a MaxMind database that has coordinates (a city database).
        case geoip
        /// The client address's country (from a MaxMind database without coordinates, or the built-in
        /// tor-geoipdb fallback), placed at the country's centroid.
        case country
        /// The configured default.
        case `default`
    }

    public var location: GeoPoint
    public var source: Source
    /// ISO 3166-1 alpha-2 code (upper case) when one is known: from the GeoIP lookup or a trusted country header.
    public var countryCode: String?
    /// The client address the gateway settled on: the socket's peer, or from a trusted peer the rightmost
    /// `x-forwarded-for` entry that is not itself a trusted proxy. `nil` when the peer is not an IP socket.
    public var address: IPAddress?

    public init(location: GeoPoint, source: Source, countryCode: String? = nil, address: IPAddress? = nil) {
        self.location = location
        self.source = source
        self.countryCode = countryCode
        self.address = address
    }
}

/// Resolves a client's location. From a trusted proxy (the peer's address is in ``trustedProxies``): its geo headers,
/// and the client address from `x-forwarded-for`; from anyone else only the socket's peer address is used and every
/// such header is ignored. The address is then looked up in the GeoIP database (``geoIP``); failing all that, the
/// configured default applies.
public struct ClientLocator: Sendable {
    public let trustedProxies: [CIDR]
    public let defaultLocation: GeoPoint
    public let geoIP: (any IPGeolocator)?

    public init(trustedProxies: [CIDR], defaultLocation: GeoPoint, geoIP: (any IPGeolocator)? = nil) {
        self.trustedProxies = trustedProxies
        self.defaultLocation = defaultLocation
        self.geoIP = geoIP
    }

    static let latitude = HTTPField.Name("cloudfront-viewer-latitude")!
    static let longitude = HTTPField.Name("cloudfront-viewer-longitude")!
    static let country = HTTPField.Name("cloudfront-viewer-country")!
    static let cfLatitude = HTTPField.Name("cf-iplatitude")!
    static let cfLongitude = HTTPField.Name("cf-iplongitude")!
    static let cfCountry = HTTPField.Name("cf-ipcountry")!
    static let forwardedFor = HTTPField.Name("x-forwarded-for")!

    /// At most this many `x-forwarded-for` entries are examined, from the right; a longer chain is cut there.
    static let maxForwardedEntries = 32

    public func locate(headers: HTTPFields, peer: SocketAddress?) -> LocatedClient {
        let peerAddress = peer?.ipAddress.flatMap { IPAddress($0) }
        guard let peerAddress else { return LocatedClient(location: defaultLocation, source: .default) }
        let trusted = isTrusted(peerAddress)
        let address = trusted ? clientAddress(forwardedFor: headers, peer: peerAddress) : peerAddress
        let claimedCountry = trusted ? Self.countryCode(headers[Self.country] ?? headers[Self.cfCountry]) : nil
        if trusted, let point = Self.headerLocation(headers) {
            return LocatedClient(location: point, source: .header, countryCode: claimedCountry, address: address)
        }
        if let match = geoIP?.lookup(address) {
            if let point = match.location {
                return LocatedClient(location: point, source: .geoip, countryCode: match.countryCode, address: address)
            }
            if let code = match.countryCode, let point = CountryCentroids.point(for: code) {
                return LocatedClient(location: point, source: .country, countryCode: code, address: address)
            }
        }
        return LocatedClient(location: defaultLocation, source: .default, countryCode: claimedCountry, address: address)
    }

    public func isTrusted(_ peer: SocketAddress?) -> Bool {
        guard let ip = peer?.ipAddress, let address = IPAddress(ip) else { return false }
        return isTrusted(address)
    }

    public func isTrusted(_ address: IPAddress) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }

    /// The rightmost `x-forwarded-for` address that is not a trusted proxy. Walking from the peer leftwards, each
    /// trusted hop vouches for the entry to its left; the first untrusted one is the client. An entry that is not an
    /// address ends the walk (nothing to its left can be believed) and the last vouched-for address is used, as when
    /// the whole chain is trusted proxies.
    func clientAddress(forwardedFor headers: HTTPFields, peer: IPAddress) -> IPAddress {
        let entries = headers[values: Self.forwardedFor].flatMap { $0.split(separator: ",") }
        var client = peer
        for entry in entries.reversed().prefix(Self.maxForwardedEntries) {
            guard let address = IPAddress(forwardedEntry: entry) else { break }
            client = address
            if !isTrusted(address) { break }
        }
        return client
    }

    /// A trusted proxy's coordinates: CloudFront's, else Cloudflare's; a pair must be complete and valid.
    static func headerLocation(_ headers: HTTPFields) -> GeoPoint? {
        for (latitudeName, longitudeName) in [(latitude, longitude), (cfLatitude, cfLongitude)] {
            if let latitude = headers[latitudeName].flatMap(Self.coordinate),
                let longitude = headers[longitudeName].flatMap(Self.coordinate),
                let point = GeoPoint(latitude: latitude, longitude: longitude)
            {
                return point
            }
        }
        return nil
    }

    /// A decimal coordinate as CloudFront writes it; anything else (hex, exponents, NaN, long strings) is refused.
    static func coordinate(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard (1...24).contains(trimmed.utf8.count),
            trimmed.utf8.allSatisfy({
                (48...57).contains($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+")
            })
        else { return nil }
        return Double(trimmed)
    }

    /// An ISO 3166-1 alpha-2 code (two ASCII letters, returned upper case); anything else is refused.
    static func countryCode(_ text: String?) -> String? {
        guard let text, text.utf8.count == 2,
            text.utf8.allSatisfy({ (65...90).contains($0) || (97...122).contains($0) })
        else { return nil }
        return text.uppercased()
    }
}
