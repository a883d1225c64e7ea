import Crypto
import Foundation
import Testing
import VergeTestSupport

/// A host's client connections, probed byte for byte: when a connection stays open and when it closes, HTTP/1.0,
/// `Expect: 100-continue`, a request body read with backpressure, and one the call never read.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct HostConnectionTests {
    @Test func connectionsCloseExactlyWhenHTTPSaysSo() async throws {
        try await Self.withEchoHost { cluster, host, authority in

            // HTTP/1.0 without keep-alive: one answer, then the host closes.
            try await blocking {
                let connection = try RawHTTPConnection(url: host)
                try connection.send("GET /echo HTTP/1.0\r\nHost: \(authority)\r\n\r\n")
                let response = try connection.readResponse()
                #expect(response.status == 200 && response.version == "HTTP/1.0", "\(response)")
                #expect(response.header("x-verge-invocation-id") != nil)
                #expect(try connection.readToEnd().isEmpty)
            }
            // HTTP/1.0 with keep-alive: said back, and the connection serves a second request.
            try await blocking {
                let connection = try RawHTTPConnection(url: host)
                try connection.send("GET /echo HTTP/1.0\r\nHost: \(authority)\r\nConnection: keep-alive\r\n\r\n")
                let first = try connection.readResponse()
                #expect(first.status == 200 && first.header("connection") == "keep-alive", "\(first)")
                try connection.send("GET /echo/2 HTTP/1.1\r\nHost: \(authority)\r\nConnection: close\r\n\r\n")
                let second = try connection.readResponse()
                #expect(second.status == 200 && second.text.contains("/echo/2"), "\(second)")
                #expect(second.header("connection") == "close")
                #expect(try connection.readToEnd().isEmpty)
            }
            // A body the call never reads (no such function): answered, then closed, since the rest of the body on
            // the wire is not a request. The answer does not wait for the body.
            try await blocking {
                let connection = try RawHTTPConnection(url: host)
                try connection.send(
                    "POST /missing HTTP/1.1\r\nHost: \(authority)\r\nContent-Length: 100000\r\n\r\n"
                        + String(repeating: "G", count: 1000))
                let response = try connection.readResponse()
                #expect(response.status == 404 && response.header("connection") == "close", "\(response)")
                #expect(connection.waitForClose())
            }
            // A valid request followed by bytes that are not one: the valid one gets its answer first, then the 400,
            // then the connection closes — on a host and through the gateway (the same listener rules).
            for target in [host, cluster.gatewayURL] {
                try await Self.onConnection(to: target) { connection, authority in
                    try connection.send(
                        "GET /echo/first HTTP/1.1\r\nHost: \(authority)\r\n\r\n"
                            + "GET /echo HTTP/1.1\r\nHost: \(authority)\r\n"
                            + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n")
                    let first = try connection.readResponse()
                    #expect(first.status == 200 && first.text.contains("/echo/first"), "\(target): \(first)")
                    let rejected = try connection.readResponse()
                    #expect(rejected.status == 400 && rejected.header("connection") == "close", "\(rejected)")
                    #expect(try connection.readToEnd().isEmpty)
                }
            }
            // Bytes after a request that closes the connection are not a request: its answer, whole, then the close,
            // and no 400 for what followed — also when they come in several writes while the answer is on its way.
            for target in [host, cluster.gatewayURL] {
                try await Self.onConnection(to: target) { connection, authority in
                    try connection.send(
                        "GET /echo/last?pad=300000 HTTP/1.1\r\nHost: \(authority)\r\nConnection: close\r\n\r\n"
                            + "GET /echo/never HTTP/1.1\r\nHost: \(authority)\r\n\r\n")
                    _ = connection.trySend(Array("GET /echo/never/2 HTTP/1.1\r\n\r\n".utf8))
                    _ = connection.trySend(Array("not http at all\r\n\r\n".utf8))
                    let last = try connection.readResponse()
                    #expect(last.status == 200 && last.text.contains("/echo/last"), "\(target): \(last)")
                    let body = try JSONSerialization.jsonObject(with: Data(last.body)) as? [String: Any]
                    #expect((body?["pad"] as? String)?.utf8.count == 300_000, "\(target)")
                    #expect(try connection.readToEnd().isEmpty, "\(target)")
                }
            }
            // A body declared over the limit: 413 at once, then closed.
            try await blocking {
                let connection = try RawHTTPConnection(url: host)
                try connection.send(
                    "POST /echo HTTP/1.1\r\nHost: \(authority)\r\nContent-Length: \(64 << 20)\r\n\r\nabc")
                let response = try connection.readResponse()
                #expect(response.status == 413 && response.header("connection") == "close", "\(response)")
                #expect(connection.waitForClose())
            }
        }
    }

    @Test func requestBodiesArriveWholeThroughBackpressureAndContinue() async throws {
        try await Self.withEchoHost { cluster, host, authority in

            // 4 MiB in 64 KiB chunks, far past what the host buffers before it stops reading; then a second request
            // on the same connection.
            let chunk = [UInt8](repeating: UInt8(ascii: "b"), count: 64 * 1024)
            let chunks = 64
            var digest = SHA256()
            for _ in 0..<chunks { digest.update(data: chunk) }
            let expected = digest.finalize().map { String(format: "%02x", $0) }.joined()
            try await blocking {
                let connection = try RawHTTPConnection(url: host)
                try connection.send(
                    "POST /echo HTTP/1.1\r\nHost: \(authority)\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in 0..<chunks {
                    let size = Array("\(String(chunk.count, radix: 16))\r\n".utf8)
                    try connection.send(size + chunk + Array("\r\n".utf8))
                }
                try connection.send("0\r\n\r\nGET /echo/next HTTP/1.1\r\nHost: \(authority)\r\n\r\n")
                let posted = try connection.readResponse()
                #expect(posted.status == 200, "\(posted)")
                let body = try JSONSerialization.jsonObject(with: Data(posted.body)) as? [String: Any]
                #expect(body?["body_length"] as? Int == chunk.count * chunks)
                #expect(body?["body_sha256"] as? String == expected)
                let next = try connection.readResponse()
                #expect(next.status == 200 && next.text.contains("/echo/next"), "\(next)")
            }

            // Expect: 100-continue: the interim answer comes before the body is sent.
            try await blocking {
                let connection = try RawHTTPConnection(url: host)
                try connection.send(
                    "POST /echo HTTP/1.1\r\nHost: \(authority)\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
                let interim = try connection.readResponse(interim: true)
                #expect(interim.status == 100, "\(interim)")
                try connection.send("hello")
                let response = try connection.readResponse()
                let body = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
                #expect(response.status == 200 && body?["body_length"] as? Int == 5, "\(response)")
            }
        }
    }

    /// A body that stalls (slow-loris) or that the client stops sending (half-close) breaks off: the call is
    /// answered 400 and recorded as rejected, and the connection closes; the worker is not held for as long as the
    /// client likes.
    @Test func stalledAndAbandonedBodiesBreakOff() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-host-connection")
        defer { directory.remove() }
        let config = directory.path + "/cluster.json"
        try Data(#"{"connection_idle_timeout_s": 1}"#.utf8).write(to: URL(fileURLWithPath: config))
        try await Self.withEchoHost(extraArguments: ["--config", config]) { _, host, authority in
            let head = "POST /echo HTTP/1.1\r\nHost: \(authority)\r\nContent-Length: 100\r\n\r\n0123456789"
            for halfClose in [false, true] {
                let clock = ContinuousClock()
                let start = clock.now
                let response = try await blocking {
                    let connection = try RawHTTPConnection(url: host)
                    try connection.send(head)
                    if halfClose { connection.shutdownWrite() }
                    let response = try connection.readResponse()
                    #expect(connection.waitForClose())
                    return response
                }
                #expect(response.status == 400, "half-close \(halfClose): \(response)")
                #expect(response.text.contains("broke off"), "\(response)")
                #expect(response.header("connection") == "close")
                #expect(clock.now - start < .seconds(8))
            }
        }
    }

    /// Pipelined requests in orders a hostile client picks: a call that never reads its body followed by one whose
    /// body arrives late, a `Content-Length: 0` POST, responses the client reads only after sending everything, and a
    /// half-close after the last request. Each request is answered once, in order, and the host stays up.
    @Test func pipelinedRequestsAreAnsweredInOrderWhateverTheirBodies() async throws {
        try await Self.withEchoHost(also: ["slow"]) { cluster, host, authority in

            for first in [
                "POST /missing HTTP/1.1\r\nHost: \(authority)\r\nContent-Length: 5\r\n\r\nhello",
                "POST /echo HTTP/1.1\r\nHost: \(authority)\r\nContent-Length: 0\r\n\r\n",
            ] {
                try await blocking {
                    let connection = try RawHTTPConnection(url: host)
                    try connection.send(
                        first + "POST /echo/late HTTP/1.1\r\nHost: \(authority)\r\nContent-Length: 10\r\n\r\n12345")
                    let answer = try connection.readResponse()
                    #expect([404, 200].contains(answer.status), "\(answer)")
                    // The first call is over; the second still waits for half its body.
                    try connection.send("67890")
                    let late = try connection.readResponse()
                    let body = try JSONSerialization.jsonObject(with: Data(late.body)) as? [String: Any]
                    #expect(late.status == 200 && body?["body_length"] as? Int == 10, "\(late)")
                }
            }
            #expect(try await TestHTTP.get(host + "/_verge/health").status == 200)

            // Twenty 1 MB responses asked for at once and read only afterwards: each arrives whole and in order.
            try await blocking {
                let connection = try RawHTTPConnection(url: host)
                let requests = (0..<20).map {
                    "GET /echo/\($0)?pad=1000000 HTTP/1.1\r\nHost: \(authority)\r\n\r\n"
                }
                try connection.send(requests.joined())
                for index in 0..<20 {
                    let response = try connection.readResponse()
                    let body = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
                    #expect(response.status == 200 && body?["path"] as? String == "/echo/\(index)")
                    #expect((body?["pad"] as? String)?.utf8.count == 1_000_000)
                }
            }

            // Three requests, then the client half-closes: three whole answers (larger than the socket takes at
            // once), then the host closes.
            try await blocking {
                let connection = try RawHTTPConnection(url: host)
                try connection.send(
                    (1...3).map { "GET /echo/\($0)?pad=1000000 HTTP/1.1\r\nHost: \(authority)\r\n\r\n" }.joined())
                connection.shutdownWrite()
                for index in 1...3 {
                    let response = try connection.readResponse()
                    let body = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
                    #expect(response.status == 200 && body?["path"] as? String == "/echo/\(index)", "\(index)")
                    #expect((body?["pad"] as? String)?.utf8.count == 1_000_000)
                }
                #expect(try connection.readToEnd().isEmpty)
            }

            // A pipelined request whose body breaks (a chunk size that is not hex) while the one before it is still
            // running: the one before gets its own answer, then the connection closes — on a host and through the
            // gateway.
            for target in [host, cluster.gatewayURL] {
                try await Self.onConnection(to: target) { connection, authority in
                    try connection.send(
                        "GET /slow?ms=300 HTTP/1.1\r\nHost: \(authority)\r\n\r\n"
                            + "POST /echo HTTP/1.1\r\nHost: \(authority)\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + "3\r\nabc\r\nZZZ\r\n")
                    let first = try connection.readResponse()
                    #expect(first.status == 200 && first.text == "done", "\(target): \(first)")
                    #expect(try connection.readToEnd().isEmpty, "\(target)")
                }
            }

            // A body that does not arrive within the function's timeout (1 s for `slow`) breaks off: 400, the
            // client's doing, long before the connection's idle timeout (60 s).
            let clock = ContinuousClock()
            let start = clock.now
            let stalled = try await blocking {
                let connection = try RawHTTPConnection(url: host)
                try connection.send("POST /slow HTTP/1.1\r\nHost: \(authority)\r\nContent-Length: 100\r\n\r\nabc")
                return try connection.readResponse()
            }
            #expect(stalled.status == 400 && stalled.text.contains("broke off"), "\(stalled)")
            #expect(clock.now - start < .seconds(20))
        }
    }

    /// Runs `body` on a new raw connection to `target` (with the authority for its `Host` header), off Swift
    /// concurrency's threads.
    static func onConnection(
        to target: String, _ body: @escaping @Sendable (RawHTTPConnection, String) throws -> Void
    ) async throws {
        try await blocking {
            try body(RawHTTPConnection(url: target), target.replacingOccurrences(of: "http://", with: ""))
        }
    }

    /// A local cluster with `echo` (and the fixtures in `also`) deployed and served by `fra`; `body` gets the cluster,
    /// fra's URL and its authority.
    static func withEchoHost(
        extraArguments: [String] = [], also: [String] = [],
        _ body: (LocalClusterProcess, String, String) async throws -> Void
    ) async throws {
        try await LocalClusterProcess.with(extraArguments: extraArguments) { cluster in
            for fixture in ["echo"] + also {
                #expect(try await cluster.deploy(Paths.fixtureFunction(fixture)).status == 0)
            }
            let host = try #require(cluster.hostURLs["fra"])
            #expect(
                try await eventually(timeout: .seconds(10)) { try await TestHTTP.get(host + "/echo").status == 200 })
            try await body(cluster, host, host.replacingOccurrences(of: "http://", with: ""))
        }
    }
}
