import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing
import VergeProtocol

@testable import VergeHost

/// The host's NIO codec and the runtime's `Frame` codec must agree on every byte: one side of each pair runs in
/// the host, the other inside every worker.
@Suite struct WireFrameCodecTests {
    private static func samplePayload(_ kind: Frame.Kind) -> [UInt8] {
        switch kind {
        case .requestEnd, .responseEnd: []
        case .requestBody, .responseBody: (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        default: Array(#"{"kind":"\#(kind)","ü":"✓"}"#.utf8)
        }
    }

    private static func encode(_ frame: WireFrame) throws -> [UInt8] {
        var out = ByteBuffer()
        try WireFrameEncoder().encode(data: frame, out: &out)
        return Array(out.readableBytesView)
    }

    /// Runs the decoder over `bytes` as one buffer, the way `ByteToMessageHandler` calls it.
    private static func decodeAll(_ bytes: [UInt8]) throws -> (frames: [Frame], leftover: Int) {
        var decoder = WireFrameDecoder()
        var buffer = ByteBuffer(bytes: bytes)
        var frames: [Frame] = []
        while let frame = try decoder.decode(buffer: &buffer) {
            frames.append(Frame(frame.kind, payload: Array(frame.payload.readableBytesView)))
        }
        return (frames, buffer.readableBytes)
    }

    @Test(arguments: Frame.Kind.allCases)
    func encoderWritesWhatTheRuntimeWrites(kind: Frame.Kind) throws {
        let frame = Frame(kind, payload: Self.samplePayload(kind))
        let bytes = try Self.encode(WireFrame(kind, payload: ByteBuffer(bytes: frame.payload)))
        #expect(bytes == frame.encoded())

        var parser = FrameParser()
        parser.append(bytes)
        #expect(try parser.next() == frame)
        #expect(parser.pendingByteCount == 0)
    }

    @Test(arguments: Frame.Kind.allCases)
    func decoderReadsWhatTheRuntimeWrites(kind: Frame.Kind) throws {
        let frame = Frame(kind, payload: Self.samplePayload(kind))
        let (frames, leftover) = try Self.decodeAll(frame.encoded())
        #expect(frames == [frame])
        #expect(leftover == 0)
    }

    @Test func encoderWritesOnlyTheReadableBytesOfThePayload() throws {
        var payload = ByteBuffer(bytes: [0xAA, 0xBB, 1, 2, 3])
        payload.moveReaderIndex(forwardBy: 2)
        let bytes = try Self.encode(WireFrame(.responseBody, payload: payload))
        #expect(bytes == Frame(.responseBody, payload: [1, 2, 3]).encoded())
    }

    @Test func jsonFramesMatchTheRuntime() throws {
        let head = ResponseHead(status: 201, headers: [["content-type", "text/plain"]])
        let host = try WireFrame.json(.responseHead, head)
        let runtime = try Frame.json(.responseHead, head)
        #expect(try Self.encode(host) == runtime.encoded())
        #expect(try host.decode(ResponseHead.self) == head)
    }

    @Test func decoderSplitsFramesAcrossAnyChunking() throws {
        let frames = Frame.Kind.allCases.map { Frame($0, payload: Self.samplePayload($0)) }
        let pairs = frames.map { (ByteBuffer(bytes: $0.encoded()), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { RuntimeFrameDecoder() }
    }

    @Test func largestFrameIsAccepted() throws {
        let frame = Frame(.requestBody, payload: [UInt8](repeating: 0x5A, count: WorkerProtocol.maxFrameLength - 1))
        let bytes = frame.encoded()
        #expect(try Self.encode(WireFrame(.requestBody, payload: ByteBuffer(bytes: frame.payload))) == bytes)
        let (frames, _) = try Self.decodeAll(bytes)
        #expect(frames == [frame])
        // Until the whole frame is there, the decoder waits.
        let (partial, leftover) = try Self.decodeAll(Array(bytes.dropLast()))
        #expect(partial.isEmpty)
        #expect(leftover == bytes.count - 1)
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var message: String
        var testDescription: String { name }
    }

    static let malformed = [
        Malformed(name: "zero length", bytes: [0, 0, 0, 0], message: "frame with zero length"),
        Malformed(name: "zero length with a type", bytes: [0, 0, 0, 0, 0x10], message: "frame with zero length"),
        Malformed(
            name: "one byte over the limit", bytes: [0x00, 0x10, 0x00, 0x01],
            message: "frame of 1048577 bytes exceeds the limit of 1048576"
        ),
        Malformed(
            name: "largest length field", bytes: [0xFF, 0xFF, 0xFF, 0xFF],
            message: "frame of 4294967295 bytes exceeds the limit of 1048576"
        ),
        Malformed(name: "unknown type", bytes: [0, 0, 0, 1, 0x7F], message: "unknown frame type 0x7f"),
        Malformed(name: "type zero", bytes: [0, 0, 0, 3, 0x00, 1, 2], message: "unknown frame type 0x0"),
    ]

    @Test(arguments: malformed)
    func rejectsMalformedFramesLikeTheRuntime(_ input: Malformed) throws {
        #expect(throws: ProtocolError(input.message)) { try Self.decodeAll(input.bytes) }
        var parser = FrameParser()
        parser.append(input.bytes)
        #expect(throws: ProtocolError(input.message)) { try parser.next() }
    }

    @Test func rejectsAMalformedFrameAfterAGoodOne() throws {
        var decoder = WireFrameDecoder()
        var buffer = ByteBuffer(bytes: Frame(.ready, payload: [1]).encoded() + [0, 0, 0, 0])
        let first = try #require(try decoder.decode(buffer: &buffer))
        #expect(first.kind == .ready)
        #expect(throws: ProtocolError.self) { try decoder.decode(buffer: &buffer) }
    }

    @Test func decodeLastDeliversAWholeFrameAndEndsCleanly() throws {
        var decoder = WireFrameDecoder()
        var buffer = ByteBuffer(bytes: Frame(.responseEnd).encoded())
        let frame = try #require(try decoder.decodeLast(buffer: &buffer, seenEOF: true))
        #expect(frame.kind == .responseEnd)
        #expect(try decoder.decodeLast(buffer: &buffer, seenEOF: true) == nil)
    }

    @Test(arguments: [1, 4, 5, 9])
    func decodeLastWithAPartialFrameThrows(cut: Int) throws {
        let bytes = Frame(.responseBody, payload: [1, 2, 3, 4, 5]).encoded()
        var decoder = WireFrameDecoder()
        var buffer = ByteBuffer(bytes: bytes.prefix(cut))
        #expect(throws: ProtocolError("channel closed inside a frame")) {
            try decoder.decodeLast(buffer: &buffer, seenEOF: true)
        }
    }

    @Test func codecRoundTripsThroughAChannel() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(WireFrameDecoder()), MessageToByteHandler(WireFrameEncoder()),
        ])
        let frame = Frame(.requestHead, payload: Array(#"{"method":"GET"}"#.utf8))
        try channel.writeOutbound(WireFrame(.requestHead, payload: ByteBuffer(bytes: frame.payload)))
        let written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(written.readableBytesView) == frame.encoded())

        let reply = Frame(.responseEnd)
        try channel.writeInbound(ByteBuffer(bytes: reply.encoded()))
        let read = try #require(try channel.readInbound(as: WireFrame.self))
        #expect(read.kind == .responseEnd)
        #expect(read.payload.readableBytes == 0)
        #expect(try channel.finish().isClean)
    }

    @Test func channelCloseInsideAFrameIsAnError() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 9, 0x21, 1, 2]))
        #expect(throws: ProtocolError("channel closed inside a frame")) { try channel.finish() }
    }
}

/// The host decoder with its frames turned into the runtime's `Frame`, which is `Equatable`, so NIO's decoder
/// verifier can compare them.
private struct RuntimeFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = Frame
    var wire = WireFrameDecoder()

    mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        try wire.decode(buffer: &buffer).map { Frame($0.kind, payload: Array($0.payload.readableBytesView)) }
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        try wire.decodeLast(buffer: &buffer, seenEOF: seenEOF).map {
            Frame($0.kind, payload: Array($0.payload.readableBytesView))
        }
    }
}
