import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import VergeCore
import VergeHTTP
import VergeTestSupport

@testable import VergeGateway

/// A host that answers `/_verge/health` and `/fast` at once and never answers `/slow` (it only counts it).
final class StallingHost: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let slowCalls = Mutex(0)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let text = String(buffer: unwrapInboundIn(data))
        // One request per read is enough for this client (the gateway sends a head without a body and waits).
        for line in text.split(separator: "\r\n") where line.hasPrefix("GET ") {
            if line.hasPrefix("GET /slow") {
                slowCalls.withLock { $0 += 1 }
                continue
            }
            let response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
        }
    }
}

/// The gateway's first-byte timeout: a host that takes a call and never answers gets it answered `504` after
/// `firstByteTimeout`, while calls answered in time on the same keep-alive connection — for longer than that
/// timeout in all — never are.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct FirstByteTimeoutTests {
    @Test func aHostThatNeverAnswersGets504AfterTheTimeoutAndPromptAnswersNever() async throws {
        let host = StallingHost()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(host) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let hostPort = try #require(server.localAddress?.port)

        var configuration = GatewayConfiguration(controlPlaneURL: "http://127.0.0.1:9")
        configuration.bind = BindAddress(host: "127.0.0.1", port: 0)
        // A well-formed gateway credential (the gateway makes each host's proof from it); the stalling host checks none.
        configuration.credential = "verge_gw_\(String(repeating: "1", count: 16))_\(String(repeating: "a", count: 64))"
        configuration.firstByteTimeout = .seconds(1)
        configuration.hostRefreshInterval = .seconds(60)
        let gateway = try Gateway(configuration: configuration, logger: Logger(label: "gateway"))
        let function = HostStatus.FunctionStatus(
            tenant: defaultTenant, name: "fast", version: "1", warmWorkers: 1, idleWorkers: 1,
            busyWorkers: 0, queuedCalls: 0, workerPIDs: [])
        var slow = function
        slow.name = "slow"
        gateway.directory.update([
            HostSummary(
                name: "stall", url: "http://127.0.0.1:\(hostPort)", location: GeoPoint(50.11, 8.68), healthy: true,
                lastSeenMs: 0, warmWorkers: 1, unshippedRecords: 0, functions: [function, slow], isolation: nil)
        ])
        let running = Task { try await gateway.run(controlPlaneURL: configuration.controlPlaneURL) }
        defer { running.cancel() }
        let url = await gateway.listenAddress.url()

        // Prompt answers back to back on one connection for about twice the timeout: none is cut off.
        let connection = try RawHTTPConnection(url: url)
        let clock = ContinuousClock()
        let start = clock.now
        var calls = 0
        while clock.now - start < .milliseconds(2200) {
            try connection.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try await connection.readResponse()
            #expect(response.status == 200, "\(response)")
            #expect(response.text == "ok")
            calls += 1
        }
        #expect(calls >= 5)

        // The host takes the next call and says nothing: 504 after the timeout, not before.
        let sent = clock.now
        try connection.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        let timedOut = try await connection.readResponse()
        let waited = clock.now - sent
        #expect(timedOut.status == 504, "\(timedOut)")
        #expect(timedOut.header("x-verge-error") == "timeout", "\(timedOut)")
        #expect(waited >= .milliseconds(950), "answered after \(waited)")
        #expect(waited < .seconds(10), "answered after \(waited)")
        #expect(host.slowCalls.withLock { $0 } == 1)

        // The connection goes on serving.
        try connection.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try await connection.readResponse().status == 200)
    }
}
