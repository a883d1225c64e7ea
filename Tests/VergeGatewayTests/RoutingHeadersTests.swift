import HTTPTypes
import Testing
import VergeCore

@testable import VergeGateway

@Suite struct RoutingHeadersTests {
    static let route = Route(host: "sin", url: "http://127.0.0.1:1", distanceKm: 12.6)

    @Test(arguments: [
        "x-forwarded-for", "X-Forwarded-For", "forwarded", "x-real-ip", "true-client-ip", "cf-connecting-ip",
        "cloudfront-viewer-latitude", "cloudfront-viewer-longitude", "CloudFront-Viewer-Country", "cf-iplatitude",
        "cf-iplongitude", "cf-ipcountry", "x-verge-client-latitude", "x-verge-client-source", "x-verge-client-country",
        "x-verge-client-anything", "x-verge-route-host",
    ])
    func locationClaimsAreStripped(name: String) {
        #expect(RoutingHeaders.mustStrip(name))
    }

    @Test(arguments: [
        "accept", "x-forwarded-proto", "user-agent", "cf-ray", "x-verge", "cookie", "cloudfront-is-mobile",
    ])
    func otherHeadersAreKept(name: String) {
        #expect(!RoutingHeaders.mustStrip(name))
    }

    @Test func headersToStripNamesEachOnce() {
        var fields = HTTPFields()
        fields.append(HTTPField(name: .accept, value: "*/*"))
        fields.append(HTTPField(name: HTTPField.Name("X-Forwarded-For")!, value: "1.2.3.4"))
        fields.append(HTTPField(name: HTTPField.Name("x-forwarded-for")!, value: "5.6.7.8"))
        fields.append(HTTPField(name: HTTPField.Name("x-verge-client-latitude")!, value: "1"))
        fields.append(HTTPField(name: HTTPField.Name("cf-iplatitude")!, value: "1"))
        let names = RoutingHeaders.headersToStrip(fields).map(\.canonicalName)
        #expect(names == ["x-forwarded-for", "x-verge-client-latitude", "cf-iplatitude"])
    }

    @Test func theFunctionSeesWhereHowWhichHostAndHowFar() {
        let client = LocatedClient(
            location: GeoPoint(1.29, 103.85), source: .geoip, countryCode: "SG", address: IPAddress("203.0.113.9"))
        let headers = Dictionary(uniqueKeysWithValues: RoutingHeaders.forwarded(client: client, route: Self.route))
        #expect(
            headers == [
                "x-verge-client-latitude": "1.29", "x-verge-client-longitude": "103.85",
                "x-verge-client-source": "geoip",
                "x-verge-client-country": "SG", "x-verge-client-address": "203.0.113.9", "x-verge-route-host": "sin",
                "x-verge-route-distance-km": "13",
            ])
        let bare = RoutingHeaders.forwarded(
            client: LocatedClient(location: GeoPoint(50, 8), source: .default), route: Self.route)
        #expect(bare.map(\.name).contains("x-verge-client-country") == false)
        #expect(bare.map(\.name).contains("x-verge-client-address") == false)
    }

    @Test func onlyTheHostsOwnRefusalIsSaturation() {
        #expect(RoutingHeaders.isHostSaturated(status: 503, rejected: "overloaded"))
        #expect(RoutingHeaders.isHostSaturated(status: 503, rejected: "shutting_down"))
        #expect(!RoutingHeaders.isHostSaturated(status: 503, rejected: nil))  // the function's own 503
        #expect(!RoutingHeaders.isHostSaturated(status: 429, rejected: "too_many_requests"))
        #expect(!RoutingHeaders.isHostSaturated(status: 502, rejected: "init_failed"))
    }

    @Test func serverTimingSaysTheSame() {
        let client = LocatedClient(location: GeoPoint(1.29, 103.85), source: .country, countryCode: "SG")
        #expect(
            RoutingHeaders.serverTiming(client: client, route: Self.route, duration: .microseconds(1234))
                == "gateway;dur=1.234;desc=\"sin 13km country SG\"")
        let located = LocatedClient(location: GeoPoint(1.29, 103.85), source: .default)
        #expect(
            RoutingHeaders.serverTiming(client: located, route: Self.route, duration: .seconds(2))
                == "gateway;dur=2000.000;desc=\"sin 13km default\"")
        let odd = Route(host: "a\"b\\c", url: "", distanceKm: 0)
        #expect(
            RoutingHeaders.serverTiming(client: located, route: odd, duration: .zero)
                == "gateway;dur=0.000;desc=\"abc 0km default\"")
    }
}
