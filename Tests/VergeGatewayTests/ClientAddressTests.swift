import HTTPTypes
import NIOCore
import Testing
import VergeCore

@testable import VergeGateway

/// Which address a client has, which headers are believed from whom, and how a GeoIP answer becomes a location.
@Suite struct ClientAddressTests {
    static let defaultLocation = GeoPoint(50.1109, 8.6821)
    static let trusted = [CIDR("10.0.0.0/8")!, CIDR("127.0.0.0/8")!, CIDR("::1/128")!, CIDR("fd00::/8")!]

    /// A database held in memory: address → answer.
    struct FakeGeoIP: IPGeolocator {
        var entries: [String: GeoIPMatch]
        func lookup(_ address: IPAddress) -> GeoIPMatch? { entries[address.description] }
    }

    static let geoIP = FakeGeoIP(entries: [
        "198.51.100.7": GeoIPMatch(location: GeoPoint(1.29, 103.85), countryCode: "SG"),
        "198.51.100.8": GeoIPMatch(location: nil, countryCode: "JP"),
        "198.51.100.9": GeoIPMatch(location: nil, countryCode: "ZZ"),
        "203.0.113.5": GeoIPMatch(location: GeoPoint(40.71, -74.01), countryCode: "US"),
        "2001:db8::7": GeoIPMatch(location: GeoPoint(-33.87, 151.21), countryCode: "AU"),
    ])

    static let locator = ClientLocator(trustedProxies: trusted, defaultLocation: defaultLocation, geoIP: geoIP)

    private static func peer(_ ip: String) throws -> SocketAddress { try SocketAddress(ipAddress: ip, port: 41_000) }

    private static func forwarded(_ values: String...) -> HTTPFields {
        var fields = HTTPFields()
        for value in values { fields.append(HTTPField(name: ClientLocator.forwardedFor, value: value)) }
        return fields
    }

    @Test(arguments: [
        // The rightmost entry that is not a trusted proxy is the client; anything to its left is the client's word.
        ("198.51.100.7", "198.51.100.7"),
        ("203.0.113.5, 198.51.100.7", "198.51.100.7"),
        ("198.51.100.7, 10.0.0.5", "198.51.100.7"),
        ("203.0.113.5, 198.51.100.7, 10.0.0.5, 10.1.1.1", "198.51.100.7"),
        // Ports and brackets are allowed.
        ("198.51.100.7:5555", "198.51.100.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("  2001:db8::7 ", "2001:db8::7"),
        // A chain of trusted proxies only: the leftmost of them.
        ("10.0.0.9, 10.0.0.5", "10.0.0.9"),
        // Garbage ends the walk: nothing left of it is believed, the last vouched-for hop is used.
        ("198.51.100.7, unknown, 10.0.0.5", "10.0.0.5"),
        ("198.51.100.7, unknown", "10.0.0.1"),
        ("198.51.100.7, 1.2.3.4:port", "10.0.0.1"),
        ("198.51.100.7, example.com", "10.0.0.1"),
        ("198.51.100.7, 10.0.0.5/8", "10.0.0.1"),
        ("", "10.0.0.1"),
    ])
    func aTrustedPeersForwardedForNamesTheClient(header: String, expected: String) throws {
        let located = Self.locator.locate(headers: Self.forwarded(header), peer: try Self.peer("10.0.0.1"))
        #expect(located.address == IPAddress(expected))
    }

    @Test func severalForwardedForFieldsFormOneList() throws {
        let located = Self.locator.locate(
            headers: Self.forwarded("203.0.113.5", "198.51.100.7, 10.0.0.5"), peer: try Self.peer("10.0.0.1"))
        #expect(located.address == IPAddress("198.51.100.7"))
        #expect(located.source == .geoip)
    }

    @Test func anUntrustedPeersForwardedForIsIgnored() throws {
        let located = Self.locator.locate(
            headers: Self.forwarded("198.51.100.7"), peer: try Self.peer("203.0.113.5"))
        #expect(located.address == IPAddress("203.0.113.5"))
        #expect(located.location == GeoPoint(40.71, -74.01))
        #expect(located.countryCode == "US")
    }

    @Test func aVeryLongChainIsCutFromTheRight() throws {
        let chain = ["198.51.100.7"] + Array(repeating: "10.0.0.5", count: ClientLocator.maxForwardedEntries)
        let located = Self.locator.locate(
            headers: Self.forwarded(chain.joined(separator: ", ")), peer: try Self.peer("10.0.0.1"))
        #expect(located.address == IPAddress("10.0.0.5"))
    }

    @Test func aCityAnswerIsGeoIPACountryAnswerIsTheCentroid() throws {
        let city = Self.locator.locate(headers: [:], peer: try Self.peer("198.51.100.7"))
        #expect(
            city
                == LocatedClient(
                    location: GeoPoint(1.29, 103.85), source: .geoip, countryCode: "SG",
                    address: IPAddress("198.51.100.7")))
        let country = Self.locator.locate(headers: [:], peer: try Self.peer("198.51.100.8"))
        #expect(country.source == .country)
        #expect(country.countryCode == "JP")
        #expect(country.location == CountryCentroids.point(for: "JP"))
        // A country with no centroid, and an address the database does not know: the default.
        for ip in ["198.51.100.9", "192.0.2.1"] {
            let located = Self.locator.locate(headers: [:], peer: try Self.peer(ip))
            #expect(located.source == .default && located.location == Self.defaultLocation)
        }
        let v6 = Self.locator.locate(headers: [:], peer: try Self.peer("2001:db8::7"))
        #expect(v6.source == .geoip && v6.countryCode == "AU")
    }

    @Test func aTrustedProxysCoordinatesWinOverTheDatabase() throws {
        var fields = Self.forwarded("198.51.100.7")
        fields[ClientLocator.cfLatitude] = "48.8566"
        fields[ClientLocator.cfLongitude] = "2.3522"
        fields[ClientLocator.cfCountry] = "fr"
        let located = Self.locator.locate(headers: fields, peer: try Self.peer("10.0.0.1"))
        #expect(
            located
                == LocatedClient(
                    location: GeoPoint(48.8566, 2.3522), source: .header, countryCode: "FR",
                    address: IPAddress("198.51.100.7")))
    }

    @Test func cloudFrontIsPreferredAndAPairMustBeComplete() throws {
        var fields = HTTPFields()
        fields[ClientLocator.latitude] = "35.68"
        fields[ClientLocator.longitude] = "139.69"
        fields[ClientLocator.cfLatitude] = "48.8566"
        fields[ClientLocator.cfLongitude] = "2.3522"
        #expect(Self.locator.locate(headers: fields, peer: try Self.peer("::1")).location == GeoPoint(35.68, 139.69))
        fields[ClientLocator.longitude] = nil
        #expect(Self.locator.locate(headers: fields, peer: try Self.peer("::1")).location == GeoPoint(48.8566, 2.3522))
        fields[ClientLocator.cfLongitude] = "east"
        let located = Self.locator.locate(headers: fields, peer: try Self.peer("::1"))
        #expect(located.source == .default)
    }

    @Test func untrustedPeersCannotClaimCoordinatesOrCountry() throws {
        var fields = HTTPFields()
        fields[ClientLocator.cfLatitude] = "48.8566"
        fields[ClientLocator.cfLongitude] = "2.3522"
        fields[ClientLocator.country] = "FR"
        let located = Self.locator.locate(headers: fields, peer: try Self.peer("192.0.2.1"))
        #expect(
            located == LocatedClient(location: Self.defaultLocation, source: .default, address: IPAddress("192.0.2.1")))
    }

    @Test(arguments: ["F", "FRA", "F1", "é", "", "  "])
    func malformedCountryHeadersAreRefused(code: String) {
        #expect(ClientLocator.countryCode(code) == nil)
    }

    @Test func ipv4MappedPeersAreIPv4() throws {
        let located = Self.locator.locate(
            headers: Self.forwarded("198.51.100.7"), peer: try Self.peer("::ffff:10.0.0.1"))
        #expect(located.address == IPAddress("198.51.100.7"))
        #expect(IPAddress("::ffff:10.0.0.1")?.description == "10.0.0.1")
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "fe80::1%eth0", "host", "1.2.3.4/32", "::g"])
    func addressesAreValidated(text: String) {
        #expect(IPAddress(text) == nil)
    }
}
