import VergeProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The worker's end of the private channel it inherited from the host, read and written with blocking calls:
/// a worker serves one invocation at a time, so there is nothing to multiplex.
struct Channel: ~Copyable {
    private let fd: Int32
    private var parser = FrameParser()
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(fd: Int32) {
        self.fd = fd
    }

    /// The next frame from the host, `nil` when the host closed the channel.
    mutating func read() throws -> Frame? {
        while true {
            if let frame = try parser.next() { return frame }
            let count = readBuffer.withUnsafeMutableBytes { raw in
                Glibc.read(fd, raw.baseAddress, raw.count)
            }
            if count == 0 {
                guard parser.pendingByteCount == 0 else { throw ProtocolError("channel closed inside a frame") }
                return nil
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw ProtocolError("read failed: errno \(errno)")
            }
            parser.append(readBuffer[0..<count])
        }
    }

    func write(_ frame: Frame) throws {
        try writeAll(frame.encoded())
    }

    /// Writes frames already laid out in `bytes`.
    func write(bytes: [UInt8]) throws {
        try writeAll(bytes)
    }

    /// Appends a body as frames of at most the preferred chunk size, never one oversized frame.
    static func appendBody(_ kind: Frame.Kind, _ body: [UInt8], to out: inout [UInt8]) {
        out.reserveCapacity(out.count + body.count + 5 * (body.count / WorkerProtocol.preferredChunkSize + 1))
        var offset = 0
        while offset < body.count {
            let end = min(offset + WorkerProtocol.preferredChunkSize, body.count)
            Frame.appendHeader(kind: kind, payloadCount: end - offset, to: &out)
            out.append(contentsOf: body[offset..<end])
            offset = end
        }
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw ProtocolError("write failed: errno \(errno)")
            }
            written += count
        }
    }
}
