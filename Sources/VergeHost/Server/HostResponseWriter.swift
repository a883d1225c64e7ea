import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import VergeCore
import VergeHTTP

/// Writes one call's response on its connection, from the call's task (see ``HostConnectionHandler``). Every write
/// happens on the connection's event loop, in the order the task makes them: the task prefers that loop as its
/// executor, so a write is normally a direct call; from another thread it is queued on the loop, and since the task
/// can only come back to the loop through the same queue, nothing it writes later can overtake it.
struct HostResponseWriter: Sendable {
    let connection: NIOLoopBound<(HostConnectionHandler, HostConnectionHandler.Exchange)>
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

    /// An HTTP/1 head of `status` with `fields` (the connection sets the version it speaks with the client).
    private static func head(status: Int, fields: HTTPFields) -> HTTPResponseHead {
        HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: HTTPHeaders(http1: fields))
    }

    /// A whole response: head, body and end in one write. Nothing is written when the response has started.
    func write(status: Int, fields: HTTPFields, body: ByteBuffer?) {
        let head = Self.head(status: status, fields: fields)
        onLoop { handler, exchange in handler.writeWhole(head, body: body, for: exchange) }
    }

    /// The response head; its body follows with ``writeBody(_:)`` and ``finish()``.
    func writeHead(status: Int, fields: HTTPFields) {
        let head = Self.head(status: status, fields: fields)
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
        let (head, body) = HTTPResponseHead.vergeError(error, headers: HTTPHeaders(http1: fields))
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

    /// The request's body breaks off unless it has arrived whole `timeout` from now (a client trickling it cannot
    /// hold the call longer than the function's own timeout).
    func limitBody(to timeout: Duration) {
        let amount = TimeAmount(timeout)
        onLoop { handler, exchange in handler.limitBody(of: exchange, to: amount) }
    }

    /// The call reads its request body for the first time (see `HostConnectionHandler.bodyRequested`).
    func bodyRequested() {
        onLoop { handler, exchange in handler.bodyRequested(exchange) }
    }

    /// Called once when the call's task ends (see `HostConnectionHandler.taskEnded`).
    func ended(_ failure: (any Error)?) {
        let failure = failure.map { "\($0)" }
        onLoop { handler, exchange in handler.taskEnded(exchange, failure: failure) }
    }
}
