import HummingbirdCore
import NIOCore
import NIOHTTP1
import VergeHTTP

/// A request as the host's connection handler received it: the HTTP/1 head as parsed (framing already checked by
/// the listener's `RequestFramingHandler`) and its body, if it has one, as an async sequence of buffers read from
/// the connection only as fast as the call consumes them.
struct HostRequest: Sendable {
    let head: HTTPRequestHead
    /// The target's path and query (`/hello?x=1`; an absolute-form target keeps only these).
    let uri: URI
    let body: HostRequestBody

    init(head: HTTPRequestHead, body: HostRequestBody) {
        self.head = head
        self.uri = URI(head.uri)
        self.body = body
    }

    var method: HTTPMethod { head.method }

    /// The first value of the field `name` (case-insensitive).
    func header(_ name: String) -> String? {
        head.headers.first(name: name)
    }

    /// Whether the request declares a body: HTTP/1.1 framing says it has none without `Content-Length` and
    /// `Transfer-Encoding` (or with `Content-Length: 0`).
    var declaresBody: Bool { Self.declaresBody(head) }

    static func declaresBody(_ head: HTTPRequestHead) -> Bool {
        if head.headers.contains(name: "transfer-encoding") { return true }
        guard let length = head.headers.first(name: "content-length") else { return false }
        // The listener let only plain digits through.
        return length.utf8.contains { $0 != UInt8(ascii: "0") }
    }


    /// The fields a function sees, as `[name, value]` pairs with lower-case names, in the order received: without
    /// the first `Host` (the authority) and without any `x-verge-*` field (the platform's own, never a client's).
    var functionFields: [[String]] {
        var fields: [[String]] = []
        fields.reserveCapacity(head.headers.count)
        var hostSeen = false
        for (name, value) in head.headers {
            let lowered = name.lowercased()
            if !hostSeen && lowered == "host" {
                hostSeen = true
                continue
            }
            if lowered.hasPrefix("x-verge-") { continue }
            fields.append([lowered, value])
        }
        return fields
    }
}

/// A request's body: empty, or the buffers the connection delivers, with backpressure (the connection is not read
/// while the call has 8 buffers unconsumed, until it has consumed all but 2). Throws when the client's body breaks
/// off (the connection closed, the parser refused a chunk, or the body stalled). Making an iterator tells the
/// connection that the call wants the body (a client waiting for `100 Continue` gets it then).
struct HostRequestBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    typealias Stream = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark,
        HostConnectionHandler.BodyDemand
    >

    let stream: Stream?
    let firstRead: (@Sendable () -> Void)?

    init(stream: Stream?, firstRead: (@Sendable () -> Void)? = nil) {
        self.stream = stream
        self.firstRead = firstRead
    }

    static let empty = HostRequestBody(stream: nil)

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Stream.AsyncIterator?

        mutating func next() async throws -> ByteBuffer? {
            guard base != nil else { return nil }
            return try await base!.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        firstRead?()
        return AsyncIterator(base: stream?.makeAsyncIterator())
    }
}
