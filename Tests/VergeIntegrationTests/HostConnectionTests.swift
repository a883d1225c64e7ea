import Crypto
import Foundation
import Testing
import VergeTestSupport

/// A host's client connections, probed byte for byte: when a connection stays open and when it closes, HTTP/1.0,
/// `Expect: 100-continue`, a request body read with backpressure, and one the call never read.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct HostConnectionTests {
    @Test func connectionsCloseExactlyWhenHTTPSaysSo() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let host = try #require(cluster.hostURLs["fra"])
            let authority = host.replacingOccurrences(of: "http://", with: "")
            #expect(
                try await eventually(timeout: .seconds(10)) { try await TestHTTP.get(host + "/echo").status == 200 })

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
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let host = try #require(cluster.hostURLs["fra"])
            let authority = host.replacingOccurrences(of: "http://", with: "")
            #expect(
                try await eventually(timeout: .seconds(10)) { try await TestHTTP.get(host + "/echo").status == 200 })

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
                    try connection.send(Array("\(String(chunk.count, radix: 16))\r\n".utf8) + chunk + Array("\r\n".utf8))
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
        try await LocalClusterProcess.with(extraArguments: ["--config", config]) { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let host = try #require(cluster.hostURLs["fra"])
            let authority = host.replacingOccurrences(of: "http://", with: "")
            #expect(
                try await eventually(timeout: .seconds(10)) { try await TestHTTP.get(host + "/echo").status == 200 })
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
}
