import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP

/// One client connection of a host, driven by its event loop. Each request runs as a Swift task that prefers the
/// connection's event loop as executor (see `EventLoopTaskExecutor`): the task is the call (worker, record,
/// response), the handler is the connection. Request parts reach the task without an async channel in between, and
/// the task's response parts go straight down the pipeline (``HostResponseWriter``).
///
/// The rules:
/// - framing was checked by the listener (`RequestFramingHandler`) before a part arrives here;
/// - one request at a time, in order: the parts of pipelined requests wait (at most ``maxQueued``; past that the
///   connection takes no further request, answers those it holds and closes) and the socket is not read meanwhile;
/// - the next request starts only once the previous response has been written to the socket, so a client that does
///   not read its responses makes the host hold one response, not one per request it sent;
/// - a request body reaches the task with backpressure (``HostRequestBody``), and only when the task asks for it
///   (then `100 Continue` is sent if the client expects it); a body that stops arriving — for the listener's idle
///   timeout, past the deadline the call sets, or because the client half-closed — breaks off (the call answers
///   400); a body the call did not read to its end closes the connection after the response (`connection: close`),
///   since what follows on the wire is not a request;
/// - the connection closes after the response when the client asked (`Connection: close`, HTTP/1.0 without
///   keep-alive), when the response has no length on HTTP/1.0, when the server quiesces, and when a response broke
///   off after its head (the only honest signal left); a client that half-closes gets the answers to every request
///   it sent, then the connection closes; an idle connection closes on the listener's idle event, and so does one
///   whose client stopped reading a response.
final class HostConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Serves one request on its connection's event loop.
    typealias Responder = @Sendable (HostRequest, HostResponseWriter, any EventLoop) async throws -> Void

    /// Most parts of pipelined requests held while a response is made.
    static let maxQueued = 256

    /// One request and its response.
    final class Exchange {
        enum Response {
            case notStarted
            case headWritten
            case done
        }

        let keepAlive: Bool
        let version: HTTPVersion
        /// The client sent `Expect: 100-continue` on HTTP/1.1 with a body; `100 Continue` goes out when the call
        /// first reads the body.
        var expectsContinue: Bool
        var requestComplete = false
        var response = Response.notStarted
        /// Where body parts go while the call consumes them; nil without a body or once the call stopped reading.
        var body: HostRequestBody.Stream.Source?
        /// Breaks off a body that has not arrived by the call's deadline.
        var bodyDeadline: Scheduled<Void>?
        var closeAfterResponse = false

        /// The body will take no more parts: its stream ends (with `error`, if the body broke off) and its deadline
        /// is cancelled.
        func endBody(_ error: (any Error)? = nil) {
            bodyDeadline?.cancel()
            bodyDeadline = nil
            guard let source = body else { return }
            body = nil
            if let error { source.finish(error) } else { source.finish() }
        }

        init(head: HTTPRequestHead, declaresBody: Bool) {
            keepAlive = head.isKeepAlive
            version = head.version
            expectsContinue =
                declaresBody && head.version.isHTTP11OrLater
                && head.headers.first(name: "expect")?.lowercased() == "100-continue"
        }
    }

    /// Resumes reading the connection when a call has consumed its request body's buffered parts; notices when the
    /// call stopped reading it. Names its exchange: a late signal about an earlier request changes nothing.
    struct BodyDemand: NIOAsyncSequenceProducerDelegate {
        let connection: NIOLoopBound<(HostConnectionHandler, Exchange)>

        func produceMore() {
            let connection = self.connection
            connection.eventLoop.execute { connection.value.0.bodyDemanded(connection.value.1) }
        }

        func didTerminate() {
            let connection = self.connection
            connection.eventLoop.execute { connection.value.0.bodyAbandoned(connection.value.1) }
        }
    }

    private let responder: Responder
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var executor: EventLoopTaskExecutor?
    private var exchange: Exchange?
    /// Parts of pipelined requests that arrived while the current response was still being made.
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    /// A `read` held back while the current call's body is paused or its response is being made.
    private var readHeld = false
    private var bodyPaused = false
    /// The last response is not yet written to the socket: the next request waits for it.
    private var awaitingFlush = false
    /// No further request is taken (the client half-closed, or sent more than ``maxQueued`` parts ahead): those
    /// held are answered, then the connection closes.
    private var lastRequestQueued = false
    /// The connection closes after the current response; nothing queued is served (quiescing, a broken request).
    private var closing = false
    /// The answer is out and the output closed; what the client still sends of its body is read and dropped.
    private var lingering = false
    /// How long a lingering connection reads what its client still sends before it closes.
    static let lingerTime = TimeAmount.seconds(2)
    /// Completes when the last response's end is written to the socket.
    private var lastResponseWritten: EventLoopFuture<Void>?

    init(responder: @escaping Responder, logger: Logger) {
        self.responder = responder
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        executor = EventLoopTaskExecutor(context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandonBody()
        self.context = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A part of the request in progress.
        if let exchange, !exchange.requestComplete {
            handle(part, context: context)
            return
        }
        if closing || lastRequestQueued { return }
        // A part of a pipelined request while a response is being made or written: it waits its turn.
        if exchange != nil || !queued.isEmpty || awaitingFlush {
            guard queued.count < Self.maxQueued else {
                // The client is far ahead: no further request is taken. What was queued of an unfinished request
                // is dropped; the whole ones are answered, then the connection closes.
                while let last = queued.last, !Self.isEnd(last) { queued.removeLast() }
                lastRequestQueued = true
                return
            }
            queued.append(part)
            return
        }
        handle(part, context: context)
    }

    private static func isEnd(_ part: HTTPServerRequestPart) -> Bool {
        if case .end = part { return true }
        return false
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            begin(head, context: context)
        case .body(let buffer):
            guard let exchange, let source = exchange.body else { return }
            switch source.yield(buffer) {
            case .produceMore: break
            case .stopProducing: bodyPaused = true
            case .dropped: exchange.endBody()
            }
        case .end:
            guard let exchange, !exchange.requestComplete else { return }
            exchange.requestComplete = true
            exchange.endBody()
            bodyPaused = false
            if lingering {
                context.close(promise: nil)
                return
            }
            if exchange.response == .done { exchangeEnded(exchange) }
        }
    }

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let declaresBody = HostRequest.declaresBody(head)
        let exchange = Exchange(head: head, declaresBody: declaresBody)
        self.exchange = exchange
        bodyPaused = false
        let connection = NIOLoopBound((self, exchange), eventLoop: context.eventLoop)
        let writer = HostResponseWriter(connection: connection, allocator: context.channel.allocator)
        let request: HostRequest
        if declaresBody {
            let made = HostRequestBody.Stream.makeSequence(
                backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: true,
                delegate: BodyDemand(connection: connection))
            exchange.body = made.source
            request = HostRequest(
                head: head, body: HostRequestBody(stream: made.sequence, firstRead: { writer.bodyRequested() }))
        } else {
            request = HostRequest(head: head, body: .empty)
        }
        let responder = self.responder
        let eventLoop = context.eventLoop
        let logger = self.logger
        Task(executorPreference: executor) {
            var failure: (any Error)?
            do {
                try await responder(request, writer, eventLoop)
            } catch {
                failure = error
                logger.debug("response ended with an error", metadata: ["error": "\(error)"])
            }
            writer.ended(failure)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandonBody()
        queued.removeAll()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            guard let exchange, exchange.response != .done else {
                // Nothing in progress (an idle connection), or only a response going out that the client has not
                // read for the whole idle timeout.
                context.close(promise: nil)
                return
            }
            if exchange.response == .headWritten && hasUnwrittenBytes(context) {
                // The client stopped reading a streamed response: the call must not wait for it forever.
                context.close(promise: nil)
            } else if !exchange.requestComplete && !bodyPaused && !exchange.expectsContinue {
                // A body the host is ready to read that does not come (slow loris): it breaks off, the call answers
                // 400 and the connection closes, instead of holding a worker for as long as the client likes. (A
                // client still waiting for `100 Continue` was never asked for it.)
                breakOffBody(exchange, VergeError(.badRequest, "the request body stalled"))
            }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            if lingering {
                context.close(promise: nil)
                return
            }
            // The client sent all it will send: every whole request it sent is answered, then the connection closes.
            lastRequestQueued = true
            if let exchange, !exchange.requestComplete {
                breakOffBody(exchange, VergeError(.badRequest, "the client closed before the request body ended"))
            } else if exchange == nil && !awaitingFlush {
                proceed()
            }
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // Shutting down: an idle connection closes now, a busy one once its current response is out.
            closing = true
            queued.removeAll()
            if let exchange {
                exchange.closeAfterResponse = true
            } else if !awaitingFlush {
                closeWhenWritten(context)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The client's bytes broke (the parser refused a later chunk): the call learns that its body broke off and
        // answers; nothing after it on the wire can be trusted, so the connection closes after that.
        if let exchange, exchange.response != .done {
            breakOffBody(exchange, error)
            return
        }
        context.close(promise: nil)
    }

    private func hasUnwrittenBytes(_ context: ChannelHandlerContext) -> Bool {
        guard context.channel.isWritable else { return true }
        let buffered = try? context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)
        return (buffered ?? 0) > 0
    }

    // MARK: Reading

    func read(context: ChannelHandlerContext) {
        if holdsReads {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// While a request arrives, reads follow its body's demand; otherwise they wait while a response is being made
    /// or written, while queued parts wait, and once the connection takes no further request.
    private var holdsReads: Bool {
        if lingering { return false }
        if let exchange, !exchange.requestComplete { return bodyPaused }
        return exchange != nil || !queued.isEmpty || awaitingFlush || closing || lastRequestQueued
    }

    private func readIfHeld() {
        guard readHeld, !holdsReads, let context else { return }
        readHeld = false
        context.read()
    }

    fileprivate func bodyDemanded(_ exchange: Exchange) {
        guard exchange === self.exchange, bodyPaused else { return }
        bodyPaused = false
        readIfHeld()
    }

    /// The call stopped reading its body: the rest is dropped as it arrives, and the connection closes after the
    /// response.
    fileprivate func bodyAbandoned(_ exchange: Exchange) {
        guard exchange === self.exchange, exchange.body != nil else { return }
        exchange.endBody()
        bodyPaused = false
        readIfHeld()
    }

    /// The call asks for the body for the first time: a client that waits for `100 Continue` gets it now.
    func bodyRequested(_ exchange: Exchange) {
        guard exchange === self.exchange, exchange.expectsContinue, !exchange.requestComplete,
            exchange.response == .notStarted, let context
        else { return }
        exchange.expectsContinue = false
        context.writeAndFlush(
            wrapOutboundOut(.head(HTTPResponseHead(version: exchange.version, status: .continue))), promise: nil)
    }

    /// The request's body will not arrive whole: the call sees it break off (and answers), nothing after it on the
    /// wire is read as a request, and the connection closes after the response.
    private func breakOffBody(_ exchange: Exchange, _ error: any Error) {
        exchange.closeAfterResponse = true
        closing = true
        queued.removeAll()
        exchange.endBody(error)
        bodyPaused = false
    }

    private func abandonBody() {
        exchange?.endBody(VergeError(.badRequest, "the connection closed before the request body ended"))
    }

    /// Breaks off the body of `exchange` if it has not arrived whole `timeout` from now.
    func limitBody(of exchange: Exchange, to timeout: TimeAmount) {
        guard exchange === self.exchange, !exchange.requestComplete, exchange.bodyDeadline == nil, let context else {
            return
        }
        exchange.bodyDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            exchange.bodyDeadline = nil
            // Not while the host holds the body back because the call is not reading it: then the worker's own
            // deadline ends the call as the function's timeout.
            guard exchange === self.exchange, !exchange.requestComplete, !self.bodyPaused else { return }
            self.breakOffBody(
                exchange, VergeError(.badRequest, "the request body did not arrive within the function's timeout"))
        }
    }

    // MARK: Responses (from `HostResponseWriter`, on the event loop)

    func writeHead(_ head: HTTPResponseHead, for exchange: Exchange) {
        guard exchange === self.exchange, exchange.response == .notStarted, let context else { return }
        exchange.response = .headWritten
        var head = head
        head.version = exchange.version
        // A body the call did not read to its end leaves bytes on the wire that are not a request.
        if !exchange.requestComplete || !exchange.keepAlive || closing { exchange.closeAfterResponse = true }
        // HTTP/1.0 has no chunked encoding: a body of unannounced length ends where the connection does.
        let http10 = !exchange.version.isHTTP11OrLater
        if http10 && !head.headers.contains(name: "content-length") { exchange.closeAfterResponse = true }
        if exchange.closeAfterResponse {
            head.headers.replaceOrAdd(name: "connection", value: "close")
        } else if http10 {
            head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    /// Writes a part of the body and flushes; the future completes when the part is written, or is nil when the
    /// connection can take more at once.
    func writeBody(_ buffer: ByteBuffer, for exchange: Exchange) -> EventLoopFuture<Void>? {
        guard exchange === self.exchange, exchange.response == .headWritten, let context else { return nil }
        if context.channel.isWritable {
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            return nil
        }
        return context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))))
    }

    /// A whole response, unless one has started.
    func writeWhole(_ head: HTTPResponseHead, body: ByteBuffer?, for exchange: Exchange) {
        guard exchange === self.exchange, exchange.response == .notStarted, let context else { return }
        writeHead(head, for: exchange)
        if let body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        writeEnd(for: exchange)
    }

    func writeEnd(for exchange: Exchange) {
        guard exchange === self.exchange, exchange.response == .headWritten, let context else { return }
        exchange.response = .done
        if exchange.closeAfterResponse {
            closing = true
            queued.removeAll()
            let lingers = !exchange.requestComplete
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if lingers { self.linger(context) } else { context.close(promise: nil) }
            }
            return
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        lastResponseWritten = written
        if !context.channel.isWritable {
            // The client is not reading as fast: the next request waits until this response is written.
            awaitingFlush = true
            written.assumeIsolated().whenComplete { result in
                self.awaitingFlush = false
                // A write that failed means the connection is gone (its writes fail before it reports inactive):
                // no queued request may start a call for a client that cannot get its answer.
                if case .failure = result { self.closing = true }
                if self.exchange == nil { self.proceed() }
            }
        }
        if exchange.requestComplete { exchangeEnded(exchange) }
    }

    /// Closes after an answer given while the client was still sending its body (a 404, a 413, a refusal): the
    /// output side first, then the rest of the body is read and dropped until it ends, the client closes, or a
    /// bounded time passes. Closing at once would make the kernel answer the client's next bytes with a reset, which
    /// can destroy the answer before the client (or the gateway) reads it.
    private func linger(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        lingering = true
        context.close(mode: .output).assumeIsolated().whenFailure { _ in context.close(promise: nil) }
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerTime) { context.close(promise: nil) }
        readIfHeld()
    }

    /// The call's task ended. A response it never started is answered `500`; one that broke off after its head
    /// ends the connection.
    func taskEnded(_ exchange: Exchange, failure: String?) {
        guard exchange === self.exchange, let context else { return }
        switch exchange.response {
        case .done:
            return
        case .headWritten:
            exchange.response = .done
            closing = true
            queued.removeAll()
            context.flush()
            context.close(promise: nil)
        case .notStarted:
            logger.error("a call ended without a response", metadata: ["error": "\(failure ?? "none")"])
            exchange.closeAfterResponse = true
            let (head, body) = HTTPResponseHead.vergeError(
                VergeError(.internalError, "the host could not answer this call"))
            writeWhole(head, body: body, for: exchange)
        }
    }

    /// The exchange's request and response are both complete.
    private func exchangeEnded(_ exchange: Exchange) {
        guard exchange === self.exchange else { return }
        // A connection that closes after this response takes no further request.
        if exchange.closeAfterResponse { return }
        self.exchange = nil
        if !awaitingFlush { proceed() }
    }

    /// Nothing is in progress: the next queued request starts, or the connection closes, or reading resumes.
    private func proceed() {
        guard exchange == nil, let context else { return }
        if closing || !context.channel.isActive {
            closeWhenWritten(context)
            return
        }
        while exchange?.requestComplete != true, let next = queued.popFirst() {
            handle(next, context: context)
        }
        if exchange == nil && queued.isEmpty && lastRequestQueued {
            closeWhenWritten(context)
            return
        }
        readIfHeld()
    }

    /// Closes once the last response is written: closing at once would drop what the socket has not taken yet.
    private func closeWhenWritten(_ context: ChannelHandlerContext) {
        guard let written = lastResponseWritten, hasUnwrittenBytes(context) else {
            context.close(promise: nil)
            return
        }
        written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

@available(*, unavailable)
extension HostConnectionHandler: Sendable {}

extension HTTPHeaders {
    /// The fields of `fields` as HTTP/1 headers, in order.
    init(http1 fields: HTTPFields) {
        self.init(fields.map { ($0.name.rawName, $0.value) })
    }
}
