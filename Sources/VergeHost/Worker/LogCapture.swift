import NIOCore
import Synchronization
import VergeCore
import VergeUsage

/// Splits a worker's stdout or stderr into lines, cutting lines longer than `maxLineLength` so a function that
/// never prints a newline cannot make the host buffer without bound.
struct LogLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String
    static let maxLineLength = 16 * 1024

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        // Look for the newline no further than one line can reach, so lines are cut the same way however the
        // stream was split into reads.
        let window = buffer.readableBytesView.prefix(Self.maxLineLength + 1)
        if let newline = window.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - buffer.readerIndex
            var line = buffer.readString(length: length) ?? ""
            buffer.moveReaderIndex(forwardBy: 1)
            if line.hasSuffix("\r") { line.removeLast() }
            context.fireChannelRead(Self.wrapInboundOut(line))
            return .continue
        }
        if buffer.readableBytes > Self.maxLineLength {
            let line = String(decoding: buffer.readBytes(length: Self.maxLineLength)!, as: UTF8.self)
            context.fireChannelRead(Self.wrapInboundOut(line))
            return .continue
        }
        return .needMoreData
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0, let rest = buffer.readString(length: buffer.readableBytes) {
            context.fireChannelRead(Self.wrapInboundOut(rest))
        }
        return .needMoreData
    }
}

/// Hands each captured line to a closure with the stream it came from.
final class LogLineHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = String
    let stream: String
    let sink: @Sendable (_ stream: String, _ line: String) -> Void

    init(stream: String, sink: @escaping @Sendable (String, String) -> Void) {
        self.stream = stream
        self.sink = sink
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        sink(stream, unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Collects function log lines from every worker of a host and writes them to the host ledger in batches.
/// Bounded in lines and bytes: when the ledger falls behind, new lines are counted as dropped, not buffered.
public final class FunctionLogSink: Sendable {
    private let state = Mutex<(lines: [LogLine], bytes: Int, dropped: Int)>(([], 0, 0))
    private let capacity: Int
    private let byteCapacity: Int

    public init(capacity: Int = 50_000, byteCapacity: Int = 16 * 1024 * 1024) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    func append(_ line: LogLine) {
        state.withLock { state in
            if state.lines.count >= capacity || state.bytes + line.line.utf8.count > byteCapacity {
                state.dropped += 1
            } else {
                state.lines.append(line)
                state.bytes += line.line.utf8.count
            }
        }
    }

    /// Takes everything collected so far and the number of lines dropped since the last call.
    func drain() -> (lines: [LogLine], dropped: Int) {
        state.withLock { state in
            defer {
                state.lines.removeAll(keepingCapacity: true)
                state.bytes = 0
                state.dropped = 0
            }
            return (state.lines, state.dropped)
        }
    }
}
