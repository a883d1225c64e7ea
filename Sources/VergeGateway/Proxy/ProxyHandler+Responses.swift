import Foundation
import HummingbirdCore
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP

/// What the client receives from the gateway itself (its errors, its health) and how a call ends: the response's
/// end, the next pipelined request, or the connection's close.
extension ProxyHandler {
    /// Answers the call with the platform's JSON error shape.
    func respond(_ error: VergeError, call: Call, retryAfter: Bool = false) {
        guard let context, !call.responseStarted else { return }
        call.responseStarted = true
        var headers: HTTPHeaders = ["x-request-id": call.requestID]
        if retryAfter { headers.add(name: "retry-after", value: "1") }
        if call.closeAfterResponse || !call.keepAlive { headers.add(name: "connection", value: "close") }
        let (head, body) = HTTPResponseHead.vergeError(error, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if call.head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        endResponse(call)
    }

    /// A 200 with a JSON body the gateway itself answers (its health).
    func respond(json body: Data, call: Call) {
        guard let context, !call.responseStarted else { return }
        call.responseStarted = true
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: "\(body.count)")
        headers.add(name: "x-request-id", value: call.requestID)
        if call.closeAfterResponse || !call.keepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        if call.head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        endResponse(call)
    }

    func resumeClient(_ call: Call) {
        guard call.clientPaused, let context else { return }
        call.clientPaused = false
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    func endResponse(_ call: Call) {
        guard let context else { return }
        resumeClient(call)
        call.responseDone = true
        if call.closeAfterResponse || !call.keepAlive || quiescing {
            self.call = nil
            queued.removeAll()
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if call.requestComplete { finish(call) }
    }

    func finish(_ call: Call) {
        guard self.call === call else { return }
        firstByteDeadline?.disarm()
        self.call = nil
        drainQueue()
    }

    /// Serves the pipelined parts that waited for the call that just ended, up to the end of the next request.
    func drainQueue() {
        guard let context else { return }
        while !queued.isEmpty {
            if let call, call.requestComplete { break }
            handle(queued.removeFirst(), context: context)
        }
        if queued.count <= maxQueued && pausedForQueue {
            pausedForQueue = false
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
    }

    /// The client went away or the handler is removed: nothing of the call survives.
    func abandonCall() {
        queued.removeAll()
        guard let call else { return }
        self.call = nil
        dropUpstream(call)
    }
}
