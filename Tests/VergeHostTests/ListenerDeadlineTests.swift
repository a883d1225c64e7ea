import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import VergeHTTP

/// The listener's timers run on virtual time here (`EmbeddedEventLoop`): a deadline set and cleared on every
/// request never fires, one left set fires exactly when due, and the idle event comes after a quiet period only.
@Suite struct ListenerDeadlineTests {
    @Test func aDeadlineMovedOnEveryRequestFiresOnlyWhenOneIsLeftToPass() {
        let loop = EmbeddedEventLoop()
        var fired = 0
        let deadline = LazyDeadline(eventLoop: loop) { fired += 1 }
        // Request after request sets it and clears it well before it is due: it never fires.
        for _ in 0..<20 {
            deadline.arm(in: .seconds(1))
            loop.advanceTime(by: .milliseconds(300))
            deadline.disarm()
        }
        #expect(fired == 0)
        #expect(!deadline.isArmed)
        // Left set, it fires when due, not a moment before, and once.
        deadline.arm(in: .seconds(1))
        loop.advanceTime(by: .milliseconds(999))
        #expect(fired == 0)
        loop.advanceTime(by: .milliseconds(1))
        #expect(fired == 1)
        #expect(!deadline.isArmed)
        loop.advanceTime(by: .seconds(5))
        #expect(fired == 1)
        // Moved later it waits for the later time; moved earlier it fires at the earlier one.
        deadline.arm(in: .seconds(1))
        loop.advanceTime(by: .milliseconds(500))
        deadline.arm(in: .seconds(1))
        loop.advanceTime(by: .milliseconds(700))
        #expect(fired == 1)
        loop.advanceTime(by: .milliseconds(300))
        #expect(fired == 2)
        deadline.arm(in: .seconds(10))
        deadline.arm(in: .seconds(1))
        loop.advanceTime(by: .seconds(1))
        #expect(fired == 3)
        // Cancelled, it does not fire.
        deadline.arm(in: .seconds(1))
        deadline.cancel()
        loop.advanceTime(by: .seconds(3))
        #expect(fired == 3)
    }

    private func guardedChannel(headerTimeout: TimeAmount) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let deadline = RequestHeadDeadlineHandler(timeout: headerTimeout, logger: Logger(label: "test"))
        try channel.pipeline.syncOperations.addHandler(deadline)
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
        try channel.pipeline.syncOperations.addHandler(RequestFramingHandler(deadline: deadline))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test func keepAliveRequestsOutlastTheHeadDeadlineButATricklingHeadDoesNot() throws {
        let channel = try guardedChannel(headerTimeout: .seconds(1))
        defer { _ = try? channel.finish() }
        // Ten complete requests over four seconds on one connection: each head arrived in time.
        for _ in 0..<10 {
            try channel.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"))
            while try channel.readInbound(as: HTTPServerRequestPart.self) != nil {}
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(400))
        }
        #expect(channel.isActive)
        // A head that has not ended a second after its first byte closes the connection, however it trickles.
        try channel.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(600))
        try channel.writeInbound(ByteBuffer(string: "Host: a\r\n"))
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(399))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    /// Records the idle events that reach the end of the pipeline.
    final class IdleEvents: ChannelInboundHandler {
        typealias InboundIn = NIOAny
        var count = 0

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent { count += 1 }
        }
    }

    @Test func theIdleEventComesAfterAQuietTimeoutOnly() throws {
        let channel = EmbeddedChannel()
        let events = IdleEvents()
        try channel.pipeline.syncOperations.addHandler(ConnectionIdleHandler(timeout: .seconds(1)))
        try channel.pipeline.syncOperations.addHandler(events)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        defer { _ = try? channel.finish() }
        // Reads and flushes keep it busy.
        for step in 0..<10 {
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(600))
            if step.isMultiple(of: 2) {
                try channel.writeInbound(ByteBuffer(string: "x"))
            } else {
                channel.flush()
            }
        }
        #expect(events.count == 0)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(999))
        #expect(events.count == 0)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(events.count == 1)
        // Still quiet: again after every further timeout.
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(events.count == 2)
    }
}
