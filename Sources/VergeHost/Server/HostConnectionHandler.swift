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
/// - one request at a time: the parts of pipelined requests wait while a response is going out, and the connection
///   is not read meanwhile;
/// - a request body reaches the task with backpressure (``HostRequestBody``); a body the call did not read to its end
///   closes the connection after the response (`connection: close`), since what follows on the wire is not a
///   request;
/// - the connection closes after the response when the client asked (`Connection: close`, HTTP/1.0 without
///   keep-alive), when the server quiesces, or when a response broke off after its head (the only honest signal
///   left); an idle connection closes on the listener's idle event.
final class HostConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Serves one request on its connection's event loop.
    typealias Responder = @Sendable (HostRequest, HostResponseWriter, any EventLoop) async throws -> Void

    /// One request and its response.
    final class Exchange {
        enum Response {
            case notStarted
            case headWritten
            case done
        }

        let keepAlive: Bool
        let version: HTTPVersion
        var requestComplete = false
        var response = Response.notStarted
        /// Where body parts go while the call consumes them; nil without a body or once the call stopped reading.
        var body: HostRequestBody.Stream.Source?
        var closeAfterResponse = false

        init(head: HTTPRequestHead) {
            keepAlive = head.isKeepAlive
            version = head.version
        }
    }

    /// Resumes reading the connection when a call has consumed its request body's buffered parts.
    struct BodyDemand: NIOAsyncSequenceProducerDelegate {
        let handler: NIOLoopBound<HostConnectionHandler>

        func produceMore() {
            let handler = self.handler
            handler.eventLoop.execute { handler.value.bodyDemanded() }
        }

        func didTerminate() {
            let handler = self.handler
            handler.eventLoop.execute { handler.value.bodyAbandoned() }
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
    private var quiescing = false

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
        if !queued.isEmpty || exchange?.requestComplete == true {
            queued.append(part)
            return
        }
        handle(part, context: context)
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
            case .dropped: exchange.body = nil
            }
        case .end:
            guard let exchange else { return }
            exchange.requestComplete = true
            exchange.body?.finish()
            exchange.body = nil
            bodyPaused = false
            if exchange.response == .done { exchangeEnded(exchange) }
        }
    }

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let exchange = Exchange(head: head)
        self.exchange = exchange
        let request: HostRequest
        if head.headers.contains(name: "transfer-encoding") || head.headers.first(name: "content-length") != nil {
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            let made = HostRequestBody.Stream.makeSequence(
                backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: false,
                delegate: BodyDemand(handler: NIOLoopBound(self, eventLoop: context.eventLoop)))
            exchange.body = made.source
            request = HostRequest(head: head, body: HostRequestBody(stream: made.sequence))
        } else {
            request = HostRequest(head: head, body: .empty)
        }
        let writer = HostResponseWriter(
            connection: NIOLoopBound((self, exchange), eventLoop: context.eventLoop),
            allocator: context.channel.allocator)
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
            if let exchange {
                // A body the host is ready to read that does not come (a slow-loris client) breaks off: the call
                // answers 400 and the connection closes, instead of holding a worker for as long as the client likes.
                if !exchange.requestComplete && !bodyPaused {
                    breakOffBody(exchange, VergeError(.badRequest, "the request body stalled"))
                }
            } else if queued.isEmpty {
                context.close(promise: nil)
            }
            return
        }
        if event is ChannelShouldQuiesceEvent || (event as? ChannelEvent) == .inputClosed {
            // Shutting down, or the client sent all it will send: an idle connection closes now, a busy one once
            // its current response is out (a body the client will never finish breaks off).
            quiescing = true
            if let exchange {
                exchange.closeAfterResponse = true
                if (event as? ChannelEvent) == .inputClosed, !exchange.requestComplete {
                    breakOffBody(exchange, VergeError(.badRequest, "the client closed before the request body ended"))
                }
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The client's bytes broke mid-request (the parser refused a later chunk): the call learns that its body
        // broke off and answers; nothing after it on the wire can be trusted, so the connection closes after that.
        if let exchange, exchange.response != .done {
            breakOffBody(exchange, error)
            return
        }
        context.close(promise: nil)
    }

    /// The request's body will not arrive whole: the call sees it break off (and answers), nothing after it on the
    /// wire is read as a request, and the connection closes after the response.
    private func breakOffBody(_ exchange: Exchange, _ error: any Error) {
        exchange.closeAfterResponse = true
        exchange.body?.finish(error)
        exchange.body = nil
        bodyPaused = false
        queued.removeAll()
    }

    // MARK: Reading

    func read(context: ChannelHandlerContext) {
        if holdsReads {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// Reads wait while the call has enough of its body, while its response is being made after its request ended
    /// (pipelined requests wait their turn), and while queued parts wait.
    private var holdsReads: Bool {
        bodyPaused || exchange?.requestComplete == true || !queued.isEmpty
    }

    private func readIfHeld() {
        guard readHeld, !holdsReads, let context else { return }
        readHeld = false
        context.read()
    }

    fileprivate func bodyDemanded() {
        bodyPaused = false
        readIfHeld()
    }

    /// The call stopped reading its body: the rest is dropped as it arrives, and the connection closes after the
    /// response.
    fileprivate func bodyAbandoned() {
        guard let exchange, exchange.body != nil else { return }
        exchange.body = nil
        bodyPaused = false
        readIfHeld()
    }

    private func abandonBody() {
        guard let exchange, let source = exchange.body else { return }
        exchange.body = nil
        source.finish(VergeError(.badRequest, "the connection closed before the request body ended"))
    }

    // MARK: Responses (from `HostResponseWriter`, on the event loop)

    fileprivate func writeHead(_ head: HTTPResponseHead, for exchange: Exchange) {
        guard exchange === self.exchange, exchange.response == .notStarted, let context else { return }
        exchange.response = .headWritten
        var head = head
        head.version = exchange.version
        // A body the call did not read to its end leaves bytes on the wire that are not a request.
        if !exchange.requestComplete { exchange.closeAfterResponse = true }
        if !exchange.keepAlive || quiescing { exchange.closeAfterResponse = true }
        // HTTP/1.0 has no chunked encoding: a body of unannounced length ends where the connection does.
        let http10 = exchange.version.major == 1 && exchange.version.minor == 0
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
    fileprivate func writeBody(_ buffer: ByteBuffer, for exchange: Exchange) -> EventLoopFuture<Void>? {
        guard exchange === self.exchange, exchange.response == .headWritten, let context else { return nil }
        if context.channel.isWritable {
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            return nil
        }
        return context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))))
    }

    /// A whole response, unless one has started.
    fileprivate func writeWhole(_ head: HTTPResponseHead, body: ByteBuffer?, for exchange: Exchange) {
        guard exchange === self.exchange, exchange.response == .notStarted, let context else { return }
        writeHead(head, for: exchange)
        if let body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        writeEnd(for: exchange)
    }

    fileprivate func writeEnd(for exchange: Exchange) {
        guard exchange === self.exchange, exchange.response == .headWritten, let context else { return }
        exchange.response = .done
        if exchange.closeAfterResponse {
            queued.removeAll()
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if exchange.requestComplete { exchangeEnded(exchange) }
    }

    /// The call's task ended. A response it never started is answered `500`; one that broke off after its head
    /// ends the connection.
    fileprivate func taskEnded(_ exchange: Exchange, failure: (any Error)?) {
        guard exchange === self.exchange, let context else { return }
        switch exchange.response {
        case .done:
            return
        case .headWritten:
            exchange.response = .done
            queued.removeAll()
            context.flush()
            context.close(promise: nil)
        case .notStarted:
            logger.error("a call ended without a response", metadata: ["error": "\(failure.map { "\($0)" } ?? "none")"])
            exchange.closeAfterResponse = true
            let (head, body) = HostResponseWriter.errorResponse(
                VergeError(.internalError, "the host could not answer this call"), fields: [:],
                allocator: context.channel.allocator)
            writeWhole(head, body: body, for: exchange)
        }
    }

    /// The exchange's request and response are both complete: the next pipelined request, if any, starts.
    private func exchangeEnded(_ exchange: Exchange) {
        guard exchange === self.exchange, let context else { return }
        self.exchange = nil
        while let next = queued.first, self.exchange?.requestComplete != true {
            queued.removeFirst()
            handle(next, context: context)
        }
        if self.exchange == nil && quiescing {
            context.close(promise: nil)
            return
        }
        readIfHeld()
    }
}

@available(*, unavailable)
extension HostConnectionHandler: Sendable {}

/// Writes one call's response on its connection, from the call's task. Every write happens on the connection's event
/// loop, in the order the task makes them.
struct HostResponseWriter: Sendable {
    fileprivate let connection: NIOLoopBound<(HostConnectionHandler, HostConnectionHandler.Exchange)>
    let allocator: ByteBufferAllocator

    private var eventLoop: any EventLoop { connection.eventLoop }

    private func onLoop(
        _ body: @escaping @Sendable (HostConnectionHandler, HostConnectionHandler.Exchange) -> Void
    ) {
        if eventLoop.inEventLoop {
            body(connection.value.0, connection.value.1)
        } else {
            let connection = self.connection
            eventLoop.execute { body(connection.value.0, connection.value.1) }
        }
    }

    /// A whole response: head, body and end in one write. Nothing is written when the response has started.
    func write(status: Int, fields: HTTPFields, body: ByteBuffer?) {
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: HTTPHeaders(fields))
        onLoop { handler, exchange in handler.writeWhole(head, body: body, for: exchange) }
    }

    /// The response head; its body follows with ``writeBody(_:)`` and ``finish()``.
    func writeHead(status: Int, fields: HTTPFields) {
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: HTTPHeaders(fields))
        onLoop { handler, exchange in handler.writeHead(head, for: exchange) }
    }

    /// A part of the body, sent at once; waits while the client is not reading fast enough.
    func writeBody(_ buffer: ByteBuffer) async throws {
        if eventLoop.inEventLoop {
            try await connection.value.0.writeBody(buffer, for: connection.value.1)?.get()
            return
        }
        let connection = self.connection
        try await eventLoop.flatSubmit {
            connection.value.0.writeBody(buffer, for: connection.value.1)
                ?? connection.eventLoop.makeSucceededVoidFuture()
        }.get()
    }

    /// The end of a response whose head and body were written.
    func finish() {
        onLoop { handler, exchange in handler.writeEnd(for: exchange) }
    }

    /// A whole error response in the one error shape (see `Response.error`). Nothing is written when the response
    /// has started.
    func writeError(_ error: VergeError, fields: HTTPFields = [:]) {
        let (head, body) = Self.errorResponse(error, fields: fields, allocator: allocator)
        onLoop { handler, exchange in handler.writeWhole(head, body: body, for: exchange) }
    }

    /// A whole JSON response of `value`, encoded with the project's encoder.
    func writeJSON(_ value: some Encodable, status: Int = 200) throws {
        var body = try JSONCoding.encoder.encode(value)
        body.append(UInt8(ascii: "\n"))
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.count)
        write(status: status, fields: fields, body: allocator.buffer(bytes: body))
    }

    /// Called once when the call's task ends (see `HostConnectionHandler.taskEnded`).
    fileprivate func ended(_ failure: (any Error)?) {
        let failure = failure.map { "\($0)" }
        onLoop { handler, exchange in
            handler.taskEnded(exchange, failure: failure.map { VergeError(.internalError, $0) })
        }
    }

    static func errorResponse(
        _ error: VergeError, fields: HTTPFields, allocator: ByteBufferAllocator
    ) -> (HTTPResponseHead, ByteBuffer) {
        var headers = HTTPHeaders(fields)
        let body = (try? JSONCoding.encoder.encode(ErrorBody(error))) ?? Data()
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        headers.replaceOrAdd(name: "content-length", value: String(body.count))
        headers.replaceOrAdd(name: "x-verge-error", value: error.code.rawValue)
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: error.code.status), headers: headers)
        return (head, allocator.buffer(bytes: body))
    }
}

extension HTTPHeaders {
    /// The fields of `fields` as HTTP/1 headers, in order.
    init(_ fields: HTTPFields) {
        self.init(fields.map { ($0.name.rawName, $0.value) })
    }
}
