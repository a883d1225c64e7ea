import Testing

@testable import VergeProtocol

@Suite struct FrameTests {
    @Test(arguments: Frame.Kind.allCases)
    func roundTripsEveryKind(kind: Frame.Kind) throws {
        let frame = Frame(kind, payload: Array("payload-\(kind)".utf8))
        var parser = FrameParser()
        parser.append(frame.encoded())
        #expect(try parser.next() == frame)
        #expect(try parser.next() == nil)
    }

    @Test func decodesFramesSplitAtEveryByte() throws {
        let frames = [Frame(.requestHead, payload: [1, 2, 3]), Frame(.requestEnd), Frame(.responseBody, payload: [9])]
        let bytes = frames.flatMap { $0.encoded() }
        var parser = FrameParser()
        var decoded: [Frame] = []
        for byte in bytes {
            parser.append([byte])
            while let frame = try parser.next() { decoded.append(frame) }
        }
        #expect(decoded == frames)
        #expect(parser.pendingByteCount == 0)
    }

    @Test func rejectsZeroLength() {
        var parser = FrameParser()
        parser.append([0, 0, 0, 0, 0x10])
        #expect(throws: ProtocolError.self) { try parser.next() }
    }

    @Test func rejectsOversizedFrameBeforeBufferingIt() {
        var parser = FrameParser()
        parser.append([0x01, 0x00, 0x00, 0x01, 0x21])
        #expect(throws: ProtocolError("frame of 16777217 bytes exceeds the limit of 1048576")) { try parser.next() }
    }

    @Test func rejectsUnknownType() {
        var parser = FrameParser()
        parser.append([0, 0, 0, 1, 0x7f])
        #expect(throws: ProtocolError("unknown frame type 0x7f")) { try parser.next() }
    }

    @Test func headRoundTripsThroughJSONWithSnakeCaseKeys() throws {
        let head = RequestHead(
            invocationID: "inv-1", method: "POST", path: "/hello/x", query: "a=1", headers: [["host", "h"]],
            deadlineMs: 1_700_000_000_123, client: ClientLocation(latitude: 48.85, longitude: 2.35, source: "header"),
            host: HostInfo(name: "fra", latitude: 50.11, longitude: 8.68),
            function: FunctionInfo(tenant: "default", name: "hello", version: "abc")
        )
        let frame = try Frame.json(.requestHead, head)
        let text = String(decoding: frame.payload, as: UTF8.self)
        #expect(text.contains("\"invocation_id\":\"inv-1\""))
        #expect(text.contains("\"deadline_ms\":1700000000123"))
        #expect(try frame.decode(RequestHead.self) == head)
    }

    @Test func malformedHeadIsAProtocolError() {
        let frame = Frame(.responseHead, payload: Array("{\"status\":".utf8))
        #expect(throws: ProtocolError.self) { try frame.decode(ResponseHead.self) }
    }
}
