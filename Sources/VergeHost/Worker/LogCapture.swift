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

/// How much a worker may log, shared by its stdout and stderr: a token bucket of bytes (each line counts at least
/// `minimumLineCost`, so a flood of empty lines is bounded too). Over it, the host stops reading the worker's pipes
/// until the bucket refills: the worker's own writes block, so a function that floods its logs slows itself, not
/// its host's CPU, disk or other tenants' log lines.
final class LogBudget: Sendable {
    /// Bytes per second. Default 256 KiB/s.
    let rate: Double
    /// Bytes at once. Default 1 MiB.
    let burst: Double
    static let minimumLineCost = 128
    private let state: Mutex<(tokens: Double, last: ContinuousClock.Instant)>

    init(rate: Int = 256 * 1024, burst: Int = 1024 * 1024) {
        self.rate = Double(rate)
        self.burst = Double(burst)
        self.state = Mutex((Double(burst), ContinuousClock.now))
    }

    /// Takes the cost of a line of `bytes`; returns how long to pause reading when the bucket is now empty.
    func take(_ bytes: Int) -> Duration? {
        refill(spending: Double(max(bytes, Self.minimumLineCost)))
    }

    /// How long until the bucket is no longer in debt, or `nil` when it is not.
    func debt() -> Duration? {
        refill(spending: 0)
    }

    private func refill(spending cost: Double) -> Duration? {
        state.withLock { state in
            let now = ContinuousClock.now
            let elapsed = now - state.last
            state.last = now
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            state.tokens = min(burst, state.tokens + seconds * rate) - cost
            guard state.tokens < 0 else { return nil }
            return .nanoseconds(Int64(-state.tokens / rate * 1e9) + 1_000_000)
        }
    }
}

/// Hands each captured line to a closure with the stream it came from, within the worker's ``LogBudget``.
final class LogLineHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = String
    let stream: String
    let budget: LogBudget
    let sink: @Sendable (_ stream: String, _ line: String) -> Void

    init(stream: String, budget: LogBudget, sink: @escaping @Sendable (String, String) -> Void) {
        self.stream = stream
        self.budget = budget
        self.sink = sink
    }

    /// Whether reading is paused until the budget recovers (touched on the channel's event loop only).
    private let paused = Mutex(false)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        sink(stream, line)
        guard let pause = budget.take(line.utf8.count + 1), !paused.withLock({ $0 }) else { return }
        paused.withLock { $0 = true }
        let channel = context.channel
        channel.setOption(ChannelOptions.autoRead, value: false).whenSuccess {
            self.resume(channel, after: pause)
        }
    }

    /// Turns reading back on once the budget is out of debt (lines already read may have deepened it).
    private func resume(_ channel: any Channel, after pause: Duration) {
        channel.eventLoop.scheduleTask(in: TimeAmount(pause)) {
            if let more = self.budget.debt() {
                self.resume(channel, after: more)
                return
            }
            self.paused.withLock { $0 = false }
            channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
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
