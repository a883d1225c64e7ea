import HTTPTypes
import NIOCore
import Testing
import VergeCore

@testable import VergeGateway

@Suite struct ClientLocatorTests {
    static let defaultLocation = GeoPoint(50.1109, 8.6821)
    static let locator = ClientLocator(
        trustedProxies: [CIDR("10.0.0.0/8")!, CIDR("::1/128")!], defaultLocation: defaultLocation
    )

    private static func headers(latitude: String?, longitude: String?) -> HTTPFields {
        var fields = HTTPFields()
        if let latitude { fields[ClientLocator.latitude] = latitude }
        if let longitude { fields[ClientLocator.longitude] = longitude }
        return fields
    }

    private static func peer(_ ip: String) throws -> SocketAddress {
        try SocketAddress(ipAddress: ip, port: 41_000)
    }

    @Test(arguments: ["10.1.2.3", "10.255.255.255", "::1", "::ffff:10.0.0.7"])
    func believesHeadersFromATrustedPeer(ip: String) throws {
        let located = Self.locator.locate(
            headers: Self.headers(latitude: "48.8566", longitude: "2.3522"), peer: try Self.peer(ip)
        )
        #expect(located.location == GeoPoint(48.8566, 2.3522) && located.source == .header)
    }

    @Test(arguments: ["203.0.113.5", "11.0.0.1", "::2", "2001:db8::1", "::ffff:203.0.113.5"])
    func ignoresHeadersFromAnUntrustedPeer(ip: String) throws {
        let located = Self.locator.locate(
            headers: Self.headers(latitude: "48.8566", longitude: "2.3522"), peer: try Self.peer(ip)
        )
        #expect(located == LocatedClient(location: Self.defaultLocation, source: .default, address: IPAddress(ip)))
    }

    @Test func anUnknownPeerIsNotTrusted() {
        let located = Self.locator.locate(headers: Self.headers(latitude: "48.8566", longitude: "2.3522"), peer: nil)
        #expect(located.source == .default)
        #expect(!Self.locator.isTrusted(nil))
    }

    @Test func noProxiesMeansNoOneIsTrusted() throws {
        let locator = ClientLocator(trustedProxies: [], defaultLocation: Self.defaultLocation)
        let located = locator.locate(
            headers: Self.headers(latitude: "48.8566", longitude: "2.3522"), peer: try Self.peer("10.0.0.1")
        )
        #expect(located.source == .default)
    }

    @Test func aTrustedPeerWithoutHeadersGetsTheDefault() throws {
        let peer = try Self.peer("10.0.0.1")
        #expect(Self.locator.locate(headers: [:], peer: peer).source == .default)
        #expect(
            Self.locator.locate(headers: Self.headers(latitude: "48.8", longitude: nil), peer: peer).source == .default)
        #expect(
            Self.locator.locate(headers: Self.headers(latitude: nil, longitude: "2.3"), peer: peer).source == .default)
    }

    @Test(arguments: [
        "-33.8688", "+48.5", "0", "-0", "90", "-90", "0.000001", " 48.8566 ", "0048.5",
    ])
    func acceptsDecimalLatitudes(latitude: String) throws {
        let located = Self.locator.locate(
            headers: Self.headers(latitude: latitude, longitude: "151.2093"), peer: try Self.peer("10.0.0.1")
        )
        #expect(located.source == .header)
        #expect(located.location.longitude == 151.2093)
    }

    @Test(arguments: [
        "", " ", "abc", "NaN", "nan", "inf", "-inf", "Infinity", "0x1p3", "0x30", "1e3", "4.8e1", "91", "-90.0001",
        "1.2.3", "--5", "+-5", "-", ".", "48,85", "48.8, 49.1", "١٢", "4 8", "1234567890123456789012345",
        String(repeating: "9", count: 400),
    ])
    func rejectsMalformedLatitudes(latitude: String) throws {
        let located = Self.locator.locate(
            headers: Self.headers(latitude: latitude, longitude: "2.3522"), peer: try Self.peer("10.0.0.1")
        )
        #expect(located.location == Self.defaultLocation && located.source == .default)
    }

    @Test(arguments: ["180.5", "-181", "1e2", "0x10", "NaN", "", "999999999999999999999999"])
    func rejectsMalformedLongitudes(longitude: String) throws {
        let located = Self.locator.locate(
            headers: Self.headers(latitude: "48.8566", longitude: longitude), peer: try Self.peer("10.0.0.1")
        )
        #expect(located.source == .default)
    }

    @Test func repeatedHeadersAreRefused() throws {
        var fields = Self.headers(latitude: "48.8566", longitude: "2.3522")
        fields.append(HTTPField(name: ClientLocator.latitude, value: "40.7128"))
        let located = Self.locator.locate(headers: fields, peer: try Self.peer("10.0.0.1"))
        #expect(located.source == .default)
    }
}
