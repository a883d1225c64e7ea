import Foundation
import Testing

@testable import VergeProtocol

@Suite struct MessagesJSONTests {
    static let awkward = "quote \" backslash \\ slash / tab \t newline \n nul \u{0} bell \u{7} del \u{7F} é 東京 🚀"

    static func head(client: ClientLocation?) -> RequestHead {
        RequestHead(
            invocationID: "019c0ffee", method: "POST", path: "/fn/\(awkward)", query: "a=1&b=\(awkward)",
            headers: [["x-a", awkward], ["accept", "*/*"], ["empty", ""]], deadlineMs: 1_790_000_000_123,
            client: client, host: HostInfo(name: "fra", latitude: 50.11, longitude: 8.68),
            function: FunctionInfo(tenant: "acme", name: "hello", version: "7"))
    }

    @Test(arguments: [
        nil, ClientLocation(latitude: 48.85, longitude: 2.35, source: "header"),
        ClientLocation(latitude: -33.0, longitude: 1e-05, source: Self.awkward),
        ClientLocation(latitude: 0, longitude: -179.999999, source: "default"),
        ClientLocation(
            latitude: 35.68, longitude: 139.69, source: "geoip", country: "JP", address: "2001:db8::1",
            distanceKm: 9353.4),
    ])
    func decodesBackToAnEqualHead(client: ClientLocation?) throws {
        let head = Self.head(client: client)
        let bytes = head.jsonBytes()
        #expect(try JSONDecoder().decode(RequestHead.self, from: Data(bytes)) == head)
        #expect(try JSONSerialization.jsonObject(with: Data(bytes)) is [String: Any])
        #expect(!bytes.contains { $0 < 0x20 }, "control characters are escaped")
    }

    /// The writer names every stored property: a field added to the head (or to a value inside it) must be added to
    /// `jsonBytes()` too, or this fails.
    @Test func everyStoredPropertyIsWritten() throws {
        let head = Self.head(
            client: ClientLocation(
                latitude: 1.5, longitude: 2.5, source: "geoip", country: "FR", address: "192.0.2.1", distanceKm: 12.5))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(head.jsonBytes())) as? [String: Any])
        #expect(object.count == Mirror(reflecting: head).children.count)
        for (key, value) in [
            ("client", head.client! as Any), ("host", head.host as Any), ("function", head.function as Any),
        ] {
            let nested = try #require(object[key] as? [String: Any], "\(key)")
            #expect(nested.count == Mirror(reflecting: value).children.count, "\(key)")
        }
    }

    @Test(arguments: [nil, 0, 1_048_576])
    func responseHeadsDecodeBackEqual(bodyLength: Int?) throws {
        let head = ResponseHead(status: 204, headers: [["x-a", Self.awkward], ["b", ""]], bodyLength: bodyLength)
        #expect(try JSONDecoder().decode(ResponseHead.self, from: Data(head.jsonBytes())) == head)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(head.jsonBytes())) as? [String: Any])
        #expect(object.count == Mirror(reflecting: head).children.count - (bodyLength == nil ? 1 : 0))
    }
}
