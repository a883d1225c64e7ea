import Foundation
import Testing

@testable import VergeProtocol

/// The head readers against `JSONDecoder`: the same value for every head it decodes, and a clear refusal (never a
/// crash) for what is not a head — a response head comes from a worker, which may send anything.
@Suite struct JSONReadingTests {
    static func decoded<Head: Decodable>(_ type: Head.Type, _ text: String) -> Head? {
        try? JSONDecoder().decode(type, from: Data(text.utf8))
    }

    @Test(arguments: [
        nil, ClientLocation(latitude: 48.85, longitude: 2.35, source: "header"),
        ClientLocation(latitude: -33.0, longitude: 1e-05, source: MessagesJSONTests.awkward),
        ClientLocation(
            latitude: 35.68, longitude: 139.69, source: "geoip", country: "JP", address: "2001:db8::1",
            distanceKm: 9353.4),
    ])
    func readsWhatTheHostWrites(client: ClientLocation?) throws {
        let head = MessagesJSONTests.head(client: client)
        #expect(try RequestHead(json: head.jsonBytes()) == head)
    }

    /// Random heads, written by the host's writer and by `JSONEncoder` (other key order and escapes), read back.
    @Test func readsRandomHeadsAsJSONDecoderDoes() throws {
        var random = SystemRandomNumberGenerator()
        let alphabet = Array("aé東🚀\"\\/\n\t\u{0}\u{1F} z")
        func text() -> String {
            String((0..<Int.random(in: 0...12, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
        }
        let encoder = JSONEncoder()
        for _ in 0..<300 {
            let head = RequestHead(
                invocationID: text(), method: text(), path: text(), query: text(),
                headers: (0..<Int.random(in: 0...4, using: &random)).map { _ in [text(), text()] },
                deadlineMs: Int64.random(in: Int64.min...Int64.max, using: &random),
                client: Bool.random(using: &random)
                    ? nil
                    : ClientLocation(
                        latitude: Double.random(in: -90...90, using: &random),
                        longitude: Double.random(in: -180...180, using: &random), source: text(),
                        country: Bool.random(using: &random) ? text() : nil,
                        distanceKm: Bool.random(using: &random) ? Double.random(in: 0...20_000, using: &random) : nil),
                host: HostInfo(name: text(), latitude: 1e-7, longitude: -0.0),
                function: FunctionInfo(tenant: text(), name: text(), version: text()))
            #expect(try RequestHead(json: head.jsonBytes()) == head)
            #expect(try RequestHead(json: Array(try encoder.encode(head))) == head)
            let response = ResponseHead(
                status: Int.random(in: 100...599, using: &random), headers: [[text(), text()]],
                bodyLength: Bool.random(using: &random) ? Int.random(in: 0...1 << 20, using: &random) : nil)
            #expect(try ResponseHead(json: response.jsonBytes()) == response)
            #expect(try ResponseHead(json: Array(try encoder.encode(response))) == response)
        }
    }

    /// Forms the host's writer never uses but a worker (or a later host) may: whitespace, any key order, escapes,
    /// `null` for an absent optional, keys the reader does not know.
    @Test(arguments: [
        #" { "headers" : [ [ "a" , "b" ] ] , "status" : 200 } "#,
        #"{"status":201,"headers":[],"body_length":null}"#,
        #"{"status":200,"headers":[["x-\u00e9","\ud83d\ude80 \/ \" \\ \b\f\n\r\t"]],"body_length":0}"#,
        #"{"later":{"a":[1,-2.5e+3,true,false,null,"s",{}]},"status":200,"headers":[],"more":[]}"#,
        #"{"status":204,"headers":[["a","1","extra"],[]]}"#,
    ])
    func readsResponseHeadsAsJSONDecoderDoes(text: String) throws {
        let expected = try #require(Self.decoded(ResponseHead.self, text))
        #expect(try ResponseHead(json: Array(text.utf8)) == expected)
    }

    @Test func readsRequestHeadsInOtherFormsAsJSONDecoderDoes() throws {
        let text = """
            {"function":{"version":"v1","name":"hello","tenant":"default","new":1},"client":null,
             "host":{"longitude":8,"latitude":50.11,"name":"fra"},"deadline_ms":-1,"query":"",
             "path":"\\/hello","method":"GET","headers":[["host","x"]],"invocation_id":"i","unknown":{"deep":[[]]}}
            """
        let expected = try #require(Self.decoded(RequestHead.self, text))
        #expect(try RequestHead(json: Array(text.utf8)) == expected)
        let withClient = text.replacingOccurrences(
            of: #""client":null"#,
            with: #""client":{"latitude":-1e2,"longitude":0.5,"source":"geoip","country":null,"distance_km":3}"#)
        let expectedClient = try #require(Self.decoded(RequestHead.self, withClient))
        #expect(try RequestHead(json: Array(withClient.utf8)) == expectedClient)
    }

    /// What is not a head is refused with a protocol error naming the problem.
    @Test(arguments: [
        ("", "unexpected end of data") as (String, String),
        (#"[]"#, "expected an object"),
        (#"{"status":200}"#, "'headers' is missing"),
        (#"{"headers":[]}"#, "'status' is missing"),
        (#"{"status":200,"headers":[],"status":201}"#, "'status' appears twice"),
        (#"{"status":200.5,"headers":[]}"#, "without fraction or exponent"),
        (#"{"status":1e2,"headers":[]}"#, "without fraction or exponent"),
        (#"{"status":0200,"headers":[]}"#, "may not start with 0"),
        (#"{"status":99999999999999999999,"headers":[]}"#, "out of range"),
        (#"{"status":-,"headers":[]}"#, "expected an integer"),
        (#"{"status":200,"headers":[[1]]}"#, "expected a string"),
        (#"{"status":200,"headers":[["a"],]}"#, "expected an array of strings"),
        (#"{"status":200,"headers":[],}"#, "expected a key"),
        (#"{"status":200,"headers":[]} x"#, "unexpected data after the value"),
        (#"{"status":200,"headers":[["\ud800",""]]}"#, "lone surrogate"),
        (#"{"status":200,"headers":[["\udc00",""]]}"#, "lone surrogate"),
        (#"{"status":200,"headers":[["\x",""]]}"#, "invalid escape"),
        (#"{"status":200,"headers":[["\u12g4",""]]}"#, #"invalid \u escape"#),
        ("{\"status\":200,\"headers\":[[\"a\tb\",\"\"]]}", "control character"),
        (#"{"status":200,"headers":[],"x":tru}"#, "expected true or false"),
        (#"{"status":200,"headers":[],"x":nul}"#, "invalid literal"),
        (#"{"status":200,"headers":[],"x":"open}"#, "unexpected end of data in a string"),
        (#"{"status":200 "headers":[]}"#, "expected ',' or '}'"),
    ])
    func refusesWhatIsNotAResponseHead(text: String, problem: String) {
        #expect {
            try ResponseHead(json: Array(text.utf8))
        } throws: { error in
            "\(error)".contains("malformed response_head payload") && "\(error)".contains(problem)
        }
    }

    @Test func refusesInvalidUTF8AndDeepNesting() {
        var invalid = Array(#"{"status":200,"headers":[["a",""#.utf8)
        invalid += [0xC3, 0x28]  // a lead byte followed by no continuation byte
        invalid += Array(#""]]}"#.utf8)
        #expect(throws: ProtocolError.self) { try ResponseHead(json: invalid) }
        let deep = #"{"status":200,"headers":[],"x":"# + String(repeating: "[", count: 10_000)
            + String(repeating: "]", count: 10_000) + "}"
        #expect {
            try ResponseHead(json: Array(deep.utf8))
        } throws: { error in
            "\(error)".contains("nested deeper than")
        }
    }

    /// Every prefix of a head is refused, never read past its end or crashed on.
    @Test func everyTruncationIsRefused() {
        let bytes = MessagesJSONTests.head(
            client: ClientLocation(latitude: 1, longitude: 2, source: "header", country: "FR")
        ).jsonBytes()
        for count in 0..<bytes.count {
            #expect(throws: ProtocolError.self) { try RequestHead(json: Array(bytes[..<count])) }
        }
        let response = ResponseHead(status: 200, headers: [["a", "é"]], bodyLength: 3).jsonBytes()
        for count in 0..<response.count {
            #expect(throws: ProtocolError.self) { try ResponseHead(json: Array(response[..<count])) }
        }
    }

    @Test func aRequestHeadNeedsEveryRequiredKey() throws {
        let head = MessagesJSONTests.head(client: nil)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(head.jsonBytes())) as? [String: Any])
        for key in object.keys {
            var without = object
            without.removeValue(forKey: key)
            let bytes = Array(try JSONSerialization.data(withJSONObject: without))
            #expect(throws: ProtocolError.self, "without \(key)") { try RequestHead(json: bytes) }
            #expect(Self.decoded(RequestHead.self, String(decoding: bytes, as: UTF8.self)) == nil)
        }
    }
}
