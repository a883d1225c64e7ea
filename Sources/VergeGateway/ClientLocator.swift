import Foundation
import HTTPTypes
import NIOCore
import VergeCore

/// Where the gateway believes a client is, and why.
public struct LocatedClient: Sendable, Equatable {
    public enum Source: String, Sendable {
        /// A trusted proxy's geo headers.
        case header
        /// The configured default.
        case `default`
    }

    public var location: GeoPoint
    public var source: Source
}

/// Resolves a client's location: `cloudfront-viewer-latitude` / `-longitude` when the TCP peer is a trusted
/// proxy, otherwise the configured default. Headers from an untrusted peer are ignored, never believed.
public struct ClientLocator: Sendable {
    public let trustedProxies: [CIDR]
    public let defaultLocation: GeoPoint

    public init(trustedProxies: [CIDR], defaultLocation: GeoPoint) {
        self.trustedProxies = trustedProxies
        self.defaultLocation = defaultLocation
    }

    static let latitude = HTTPField.Name("cloudfront-viewer-latitude")!
    static let longitude = HTTPField.Name("cloudfront-viewer-longitude")!

    public func locate(headers: HTTPFields, peer: SocketAddress?) -> LocatedClient {
        if isTrusted(peer),
            let latitude = headers[Self.latitude].flatMap(Self.coordinate),
            let longitude = headers[Self.longitude].flatMap(Self.coordinate),
            let point = GeoPoint(latitude: latitude, longitude: longitude)
        {
            return LocatedClient(location: point, source: .header)
        }
        return LocatedClient(location: defaultLocation, source: .default)
    }

    public func isTrusted(_ peer: SocketAddress?) -> Bool {
        trustedProxies.contains { $0.contains(peer) }
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
}
