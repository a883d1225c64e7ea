/// One frame of the Verge worker protocol (see `Runtime/PROTOCOL.md`).
///
/// On the wire a frame is a 4-byte big-endian length, then one type byte, then `length - 1` bytes of payload.
/// Head frames carry UTF-8 JSON; body frames carry raw bytes; end frames carry nothing.
public struct Frame: Sendable, Equatable {
    public var kind: Kind
    public var payload: [UInt8]

    public init(_ kind: Kind, payload: [UInt8] = []) {
        self.kind = kind
        self.payload = payload
    }

    public enum Kind: UInt8, Sendable, CaseIterable {
        /// Worker → host, once, after the function is loaded: `Ready` JSON.
        case ready = 0x01
        /// Worker → host, instead of `ready`, when the function cannot be loaded: `FailureReport` JSON.
        case initError = 0x02
        /// Host → worker: `RequestHead` JSON. Starts an invocation.
        case requestHead = 0x10
        /// Host → worker: a chunk of the request body.
        case requestBody = 0x11
        /// Host → worker: the request body is complete.
        case requestEnd = 0x12
        /// Worker → host: `ResponseHead` JSON.
        case responseHead = 0x20
        /// Worker → host: a chunk of the response body.
        case responseBody = 0x21
        /// Worker → host: the response is complete; the worker is free for the next invocation.
        case responseEnd = 0x22
        /// Worker → host: the invocation failed (`FailureReport` JSON); the worker is free for the next invocation.
        case invocationError = 0x23
    }
}

public enum WorkerProtocol {
    /// The protocol version a worker announces in `Ready.protocol` and the host accepts.
    public static let version = 1
    /// Size of the length prefix.
    public static let lengthFieldSize = 4
    /// The largest frame (type byte plus payload) either side may send. Larger frames are a protocol error.
    public static let maxFrameLength = 1 << 20
    /// The body chunk size senders should use; receivers accept any chunk up to `maxFrameLength - 1`.
    public static let preferredChunkSize = 64 * 1024
    /// The longest body a response head may announce with `body_length`; a longer one is streamed.
    public static let maxAnnouncedBodyLength = 1 << 20
    /// Environment variable naming the inherited channel descriptor (always "3" today).
    public static let channelFDVariable = "VERGE_FD"
}

public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "worker protocol error: \(message)" }
}

extension Frame {
    /// The frame's bytes on the wire.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(5 + payload.count)
        Frame.appendHeader(kind: kind, payloadCount: payload.count, to: &out)
        out.append(contentsOf: payload)
        return out
    }

    /// Appends the 5-byte header (length and type) of a frame with `payloadCount` payload bytes.
    public static func appendHeader(kind: Kind, payloadCount: Int, to out: inout [UInt8]) {
        let length = UInt32(payloadCount + 1)
        out.append(UInt8(truncatingIfNeeded: length >> 24))
        out.append(UInt8(truncatingIfNeeded: length >> 16))
        out.append(UInt8(truncatingIfNeeded: length >> 8))
        out.append(UInt8(truncatingIfNeeded: length))
        out.append(kind.rawValue)
    }
}

/// Incremental decoder: feed it bytes as they arrive, take whole frames out.
public struct FrameParser: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, `nil` when more bytes are needed.
    /// Throws on a zero length, an oversized frame or an unknown type: the channel cannot be trusted after that.
    public mutating func next() throws(ProtocolError) -> Frame? {
        let available = buffer.count - start
        guard available >= WorkerProtocol.lengthFieldSize else { return nil }
        let length =
            Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8
            | Int(buffer[start + 3])
        guard length >= 1 else { throw ProtocolError("frame with zero length") }
        guard length <= WorkerProtocol.maxFrameLength else {
            throw ProtocolError("frame of \(length) bytes exceeds the limit of \(WorkerProtocol.maxFrameLength)")
        }
        guard available >= WorkerProtocol.lengthFieldSize + length else { return nil }
        let typeByte = buffer[start + 4]
        guard let kind = Frame.Kind(rawValue: typeByte) else {
            throw ProtocolError("unknown frame type 0x\(String(typeByte, radix: 16))")
        }
        let payloadStart = start + 5
        let payloadEnd = start + 4 + length
        let frame = Frame(kind, payload: Array(buffer[payloadStart..<payloadEnd]))
        start = payloadEnd
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 64 * 1024 {
            buffer.removeFirst(start)
            start = 0
        }
        return frame
    }

    /// Bytes received that do not yet form a whole frame.
    public var pendingByteCount: Int { buffer.count - start }
}
