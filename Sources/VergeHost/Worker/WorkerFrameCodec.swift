import NIOCore
import VergeProtocol

/// A worker-protocol frame on the host side, with its payload kept in a `ByteBuffer` so bodies are not copied.
struct WireFrame: Sendable {
    var kind: Frame.Kind
    var payload: ByteBuffer

    init(_ kind: Frame.Kind, payload: ByteBuffer = ByteBuffer()) {
        self.kind = kind
        self.payload = payload
    }

    static func json(_ kind: Frame.Kind, _ message: some Encodable) throws -> WireFrame {
        WireFrame(kind, payload: ByteBuffer(bytes: try Frame.json(kind, message).payload))
    }

    func decode<Message: Decodable>(_ type: Message.Type) throws(ProtocolError) -> Message {
        try Frame(kind, payload: Array(payload.readableBytesView)).decode(type)
    }

    /// The head of a `response_head` frame, read without `JSONDecoder` (one per call).
    func responseHead() throws(ProtocolError) -> ResponseHead {
        let result = payload.withUnsafeReadableBytes { bytes -> Result<ResponseHead, ProtocolError> in
            do throws(ProtocolError) { return .success(try ResponseHead(json: bytes)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// The report of an `init_error` or `invocation_error` frame; one that cannot be decoded still fails the call.
    var failureReport: FailureReport {
        (try? decode(FailureReport.self)) ?? FailureReport(type: "Error", message: "unknown")
    }
}

/// Splits the worker's byte stream into frames (layout in `Runtime/PROTOCOL.md`), rejecting zero-length,
/// oversized and unknown frames before buffering them: a worker is untrusted code.
struct WireFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = WireFrame

    mutating func decode(buffer: inout ByteBuffer) throws -> WireFrame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length >= 1 else { throw ProtocolError("frame with zero length") }
        guard length <= WorkerProtocol.maxFrameLength else {
            throw ProtocolError("frame of \(length) bytes exceeds the limit of \(WorkerProtocol.maxFrameLength)")
        }
        guard buffer.readableBytes >= WorkerProtocol.lengthFieldSize + Int(length) else { return nil }
        let typeByte = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self)!
        guard let kind = Frame.Kind(rawValue: typeByte) else {
            throw ProtocolError("unknown frame type 0x\(String(typeByte, radix: 16))")
        }
        buffer.moveReaderIndex(forwardBy: 5)
        let payload = buffer.readSlice(length: Int(length) - 1)!
        return WireFrame(kind, payload: payload)
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> WireFrame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 { throw ProtocolError("channel closed inside a frame") }
        return nil
    }
}

struct WireFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = WireFrame

    func encode(data: WireFrame, out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(data.payload.readableBytes + 1))
        out.writeInteger(data.kind.rawValue)
        var payload = data.payload
        out.writeBuffer(&payload)
    }
}
