import Foundation
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
import VergeProtocol
import VergeSupervisor

@testable import VergeHost

/// The host's end of a worker's socket: frames in order, the end after the last frame, a protocol error after the
/// frames before it, and back-pressure when the receiver falls behind.
@Suite struct WorkerChannelTests {
    /// A worker channel over a real socket pair on its own event loop, and the worker's end as a plain descriptor.
    private static func withChannel(
        _ body: (WorkerChannel, _ worker: Int32) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pair = try Descriptors.socketPair()
        let channel = try await ClientBootstrap(group: group).withConnectedSocket(pair.parent) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(WireFrameEncoder()))
                return try WorkerChannel.attach(to: channel)
            }
        }
        do {
            try await body(channel, pair.child)
        } catch {
            close(pair.child)
            try? await channel.channel.close()
            try await group.shutdownGracefully()
            throw error
        }
        close(pair.child)
        try? await channel.channel.close()
        try await group.shutdownGracefully()
    }

    private static func bytes(_ kind: Frame.Kind, _ payload: String = "") -> [UInt8] {
        let body = Array(payload.utf8)
        let length = UInt32(body.count + 1)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
            + [kind.rawValue] + body
    }

    private static func send(_ bytes: [UInt8], to fd: Int32) {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        precondition(written == bytes.count)
    }

    @Test func framesArriveInOrderAndTheEndAfterTheLast() async throws {
        try await Self.withChannel { channel, worker in
            Self.send(
                Self.bytes(.responseHead, #"{"status":200}"#) + Self.bytes(.responseBody, "hi")
                    + Self.bytes(.responseEnd), to: worker)
            var kinds: [Frame.Kind] = []
            var body = ""
            for _ in 0..<3 {
                let frame = try #require(try await channel.next())
                kinds.append(frame.kind)
                if frame.kind == .responseBody { body = String(buffer: frame.payload) }
            }
            #expect(kinds == [.responseHead, .responseBody, .responseEnd])
            #expect(body == "hi")
            // A frame that comes later reaches a receiver already waiting for it.
            async let later = channel.next()
            Self.send(Self.bytes(.responseEnd), to: worker)
            let laterFrame = try await later
            #expect(laterFrame?.kind == .responseEnd)
            shutdown(worker, Int32(SHUT_WR))
            let end = try await channel.next()
            let again = try await channel.next()
            #expect(end == nil && again == nil)
        }
    }

    @Test func framesTheHostSendsReachTheWorkerInOneRead() async throws {
        try await Self.withChannel { channel, worker in
            try await channel.write(contentsOf: [
                WireFrame(.requestHead, payload: ByteBuffer(string: "{}")), WireFrame(.requestEnd),
            ])
            try await channel.write(WireFrame(.requestBody, payload: ByteBuffer(string: "x")))
            var received: [UInt8] = []
            let expected = Self.bytes(.requestHead, "{}") + Self.bytes(.requestEnd) + Self.bytes(.requestBody, "x")
            while received.count < expected.count {
                var chunk = [UInt8](repeating: 0, count: 256)
                let count = read(worker, &chunk, chunk.count)
                try #require(count > 0)
                received += chunk.prefix(count)
            }
            #expect(received == expected)
        }
    }

    @Test func aBrokenFrameFailsTheReceiverAfterTheFramesBeforeIt() async throws {
        try await Self.withChannel { channel, worker in
            // A frame of length 0 is a protocol violation.
            Self.send(Self.bytes(.responseHead, "{}") + [0, 0, 0, 0], to: worker)
            let first = try await channel.next()
            #expect(first?.kind == .responseHead)
            await #expect(throws: ProtocolError.self) { try await channel.next() }
            await #expect(throws: ProtocolError.self) { try await channel.next() }
        }
    }

    @Test func aWorkerGoneMidCallEndsTheWait() async throws {
        try await Self.withChannel { channel, worker in
            async let frame = channel.next()
            shutdown(worker, Int32(SHUT_RDWR))
            let received = try await frame
            #expect(received == nil)
            // Writing to it now fails instead of waiting.
            await #expect(throws: (any Error).self) {
                for _ in 0..<64 {
                    try await channel.write(WireFrame(.requestBody, payload: ByteBuffer(repeating: 1, count: 65536)))
                }
            }
        }
    }

    /// Cancelled at once (before its wait reaches the event loop, most often) or a moment later (while it waits):
    /// either way the receiver stops with `CancellationError`, whatever order the wait and its cancellation reach
    /// the loop in.
    @Test(arguments: [0, 20])
    func aCancelledReceiverStopsWaiting(afterMilliseconds delay: Int) async throws {
        try await Self.withChannel { channel, worker in
            let waiting = Task { try await channel.next() }
            if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            // The channel still works for whoever receives next.
            Self.send(Self.bytes(.responseEnd), to: worker)
            let frame = try await channel.next()
            #expect(frame?.kind == .responseEnd)
        }
    }

    /// Counts the reads the inbox lets through to the socket.
    private final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = WireFrame
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    @Test func theSocketIsNotReadWhileTheReceiverIsBehind() throws {
        let channel = EmbeddedChannel()
        let counter = ReadCounter()
        let inbox = FrameInbox()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(inbox)
        for _ in 0..<FrameInbox.highWatermark - 1 { try channel.writeInbound(WireFrame(.responseBody)) }
        channel.read()
        #expect(counter.reads == 1)
        try channel.writeInbound(WireFrame(.responseBody))
        channel.read()
        #expect(counter.reads == 1, "a full inbox holds the read back")
        for _ in 0..<FrameInbox.highWatermark - FrameInbox.lowWatermark - 1 {
            _ = try inbox.takeReady()
            #expect(counter.reads == 1)
        }
        _ = try inbox.takeReady()
        #expect(counter.reads == 2, "the held read goes out once the receiver caught up")
        while let ready = try inbox.takeReady() { #expect(ready.frame?.kind == .responseBody) }
        _ = try channel.finish()
    }
}
