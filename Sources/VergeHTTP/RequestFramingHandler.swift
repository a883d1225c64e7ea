import Foundation
import NIOCore
import NIOHTTP1
import VergeCore

/// Rejects every request whose framing two HTTP implementations could read differently (request smuggling), before
/// any of it is handed on: `Transfer-Encoding` other than exactly `chunked` (unknown, listed, obfuscated, or on
/// HTTP/1.0), `Transfer-Encoding` with `Content-Length`, more than one `Content-Length` or one that is not plain
/// digits, more than one `Host`, or none on HTTP/1.1, and `CONNECT` (whose successors the parser would read as tunnel
/// bytes). The parser already refuses obs-fold and malformed lines; a
/// chunked request's head is held back until its first chunk has parsed, so an invalid chunk size is answered here
/// with `400` and nothing of the request is passed on. A rejected request is answered with the JSON error shape and
/// the connection is closed (what follows it on the wire cannot be trusted to start a new request).
///
/// A rejection that follows pipelined requests still being answered waits for their responses to end (it sees them
/// go out), so each of those gets its own answer first and the 400 comes last, in order.
///
/// Sits right after the HTTP/1 decoder; tells `RequestHeadDeadlineHandler` (right before it) when a head is complete
/// and when a request has ended.
final class RequestFramingHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Between requests: the parser has not produced a head yet.
        case idle
        /// A request's head was passed on; its body parts follow.
        case passing
        /// A chunked head waiting for its first chunk (or its end) to parse.
        case holding(HTTPRequestHead)
        case rejected
        /// The request that ended was the connection's last (`Connection: close`, HTTP/1.0 without keep-alive):
        /// whatever follows is not read, and is no error.
        case finished
    }

    private var state = State.idle
    private let deadline: RequestHeadDeadlineHandler
    /// Requests passed on whose response has not ended yet.
    private var unanswered = 0
    /// A rejection waiting for the responses to the requests before it.
    private var deferredRejection: String?
    /// Whether the request passed on last lets the connection carry another one.
    private var keepAlive = true

    init(deadline: RequestHeadDeadlineHandler) {
        self.deadline = deadline
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.rejected, _), (.finished, _):
            return
        case (.idle, .head(let head)), (.passing, .head(let head)):
            deadline.headReceived(context: context)
            if let problem = Self.problem(with: head) {
                reject(context: context, problem)
                return
            }
            if Self.isChunked(head), !head.headers.contains(name: "expect") {
                state = .holding(head)
                return
            }
            state = .passing
            unanswered += 1
            keepAlive = head.isKeepAlive
            context.fireChannelRead(data)
        case (.holding(let head), _):
            state = .passing
            unanswered += 1
            keepAlive = head.isKeepAlive
            context.fireChannelRead(wrapInboundOut(.head(head)))
            if case .end = part { ended(context: context) }
            context.fireChannelRead(data)
        case (_, .end):
            ended(context: context)
            context.fireChannelRead(data)
        case (_, .body):
            context.fireChannelRead(data)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch state {
        case .holding:
            // The parser refused what followed a chunked head (a chunk size that is not hex, an overflow, …): the
            // head was never passed on, so the request is refused here as a whole.
            reject(context: context, "invalid chunked body (\(error))")
        case .idle where error is HTTPParserError:
            // The parser refused a head (CL with TE, two Content-Lengths, obs-fold, …): answered in the same shape.
            reject(context: context, "\(error)")
        case .rejected:
            return
        case .finished where error is HTTPParserError || error is ByteToMessageDecoderError:
            // Bytes after the last request (the parser refuses them, then the decoder every later read): not a
            // request, not answered.
            return
        case .idle, .passing, .finished:
            context.fireErrorCaught(error)
        }
    }

    /// Why `head` cannot be passed on, or `nil` when its framing is unambiguous.
    static func problem(with head: HTTPRequestHead) -> String? {
        // The parser reads every byte after a CONNECT head as tunnel data, never as the next request: answered
        // as anything else, the connection would hang with the client's pipelined requests unread.
        if head.method == .CONNECT { return "CONNECT is not served here" }
        let headers = head.headers
        let hosts = headers["host"]
        if hosts.count > 1 { return "more than one Host header" }
        if hosts.isEmpty && head.version.isHTTP11OrLater { return "an HTTP/1.1 request needs a Host header" }
        let lengths = headers["content-length"]
        let codings = headers["transfer-encoding"]
        if !codings.isEmpty {
            if !lengths.isEmpty { return "both Content-Length and Transfer-Encoding" }
            if !head.version.isHTTP11OrLater { return "Transfer-Encoding on an HTTP/1.0 request" }
            guard codings.count == 1, codings[0].lowercased() == "chunked" else {
                return "unsupported Transfer-Encoding (only 'chunked' is accepted)"
            }
        }
        if lengths.count > 1 { return "more than one Content-Length header" }
        if let length = lengths.first {
            guard (1...18).contains(length.utf8.count), length.utf8.allSatisfy({ (48...57).contains($0) }) else {
                return "Content-Length is not a decimal number"
            }
        }
        return nil
    }

    static func isChunked(_ head: HTTPRequestHead) -> Bool {
        head.headers["transfer-encoding"].count == 1
    }

    /// A request ended: the next one may follow, unless it was the connection's last.
    private func ended(context: ChannelHandlerContext) {
        if keepAlive {
            state = .idle
            deadline.requestEnded(context: context)
        } else {
            state = .finished
            deadline.stop()
            // Answered before it ended (an early refusal): nothing more to wait for.
            if unanswered == 0 { context.close(promise: nil) }
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        unanswered = max(0, unanswered - 1)
        if unanswered == 0, case .finished = state {
            // The answer to the connection's last request: the connection closes once it is written, whatever the
            // handler after this one does.
            let written = promise ?? context.eventLoop.makePromise()
            context.write(data, promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.write(data, promise: promise)
        if unanswered == 0, let problem = deferredRejection {
            deferredRejection = nil
            sendRejection(context: context, problem)
        }
    }

    private func reject(context: ChannelHandlerContext, _ problem: String) {
        state = .rejected
        deadline.stop()
        guard unanswered == 0 else {
            deferredRejection = problem
            return
        }
        sendRejection(context: context, problem)
    }

    private func sendRejection(context: ChannelHandlerContext, _ problem: String) {
        let (head, body) = HTTPResponseHead.vergeError(
            VergeError(.badRequest, "ambiguous or invalid request framing: \(problem)"),
            headers: ["connection": "close"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension RequestFramingHandler: Sendable {}

extension HTTPVersion {
    /// HTTP/1.1 or later: a version with keep-alive by default, chunked bodies and a required `Host`.
    package var isHTTP11OrLater: Bool {
        major > 1 || (major == 1 && minor >= 1)
    }
}
