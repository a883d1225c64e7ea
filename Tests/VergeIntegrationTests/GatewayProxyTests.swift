import Foundation
import Testing
import VergeTestSupport

/// The gateway as a proxy, probed byte for byte on raw sockets: ambiguous framing never reaches a host, the
/// connection's own fields never cross, the forwarding fields and the request id are the gateway's, and slow or
/// oversized requests are cut off.
@Suite(.serialized, .cluster, .timeLimit(.minutes(4)))
struct GatewayProxyTests {
    /// A request two HTTP implementations could frame differently, and why.
    struct Smuggle: Sendable, CustomStringConvertible {
        var name: String
        var bytes: String
        var description: String { name }
    }

    static let smuggles: [Smuggle] = [
        Smuggle(
            name: "CL+TE",
            bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        Smuggle(
            name: "duplicate CL",
            bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
        Smuggle(
            name: "conflicting CL",
            bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        Smuggle(name: "CL list", bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"),
        Smuggle(name: "signed CL", bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"),
        Smuggle(
            name: "xchunked",
            bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        Smuggle(
            name: "chunked, identity",
            bytes:
                "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        Smuggle(
            name: "identity, chunked",
            bytes:
                "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        Smuggle(
            name: "space before colon",
            bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        Smuggle(
            name: "two TE fields",
            bytes:
                "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
        Smuggle(
            name: "TE on HTTP/1.0",
            bytes: "POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        Smuggle(
            name: "chunk size not hex",
            bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        Smuggle(
            name: "negative chunk size",
            bytes: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
        Smuggle(
            name: "overflowing chunk size",
            bytes:
                "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n"
        ),
        Smuggle(name: "two Host fields", bytes: "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        Smuggle(name: "no Host on HTTP/1.1", bytes: "GET /echo HTTP/1.1\r\n\r\n"),
        Smuggle(name: "obs-fold", bytes: "GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"),
        // What follows a CONNECT head is tunnel bytes to the parser: the next request would never be answered.
        Smuggle(name: "CONNECT", bytes: "CONNECT 127.0.0.1:8787 HTTP/1.1\r\nHost: 127.0.0.1:8787\r\n\r\n"),
    ]

    /// Everything that shows a call reached (or was attempted at) a host: the gateway's forwarded and failed
    /// calls and the hosts' invocations.
    static func hostTraffic(_ cluster: LocalClusterProcess) async throws -> Double {
        let metrics = try await TestHTTP.request(
            cluster.apiURL + "/metrics", headers: [("authorization", "Bearer " + (try cluster.adminToken()))])
        #expect(metrics.status == 200)
        var total = 0.0
        for line in metrics.text.split(separator: "\n")
        where line.hasPrefix("verge_gateway_requests_total") || line.hasPrefix("verge_gateway_upstream_failures_total")
            || line.hasPrefix("verge_invocations_total")
        {
            total += Double(line.split(separator: " ").last ?? "0") ?? 0
        }
        return total
    }

    @Test func ambiguousFramingIsRefusedAtTheGateway() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            // The same function answers a well-framed chunked call (and counts as host traffic).
            let good = try RawHTTPConnection(url: cluster.gatewayURL)
            try good.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            let answered = try await good.readResponse(method: "POST")
            #expect(answered.status == 200)
            #expect(answered.text.contains("\"body_length\":5") || answered.text.contains("\"body_length\": 5"))
            let before = try await Self.hostTraffic(cluster)
            #expect(before >= 1)
            for smuggle in Self.smuggles {
                let connection = try RawHTTPConnection(url: cluster.gatewayURL)
                // A second, innocent-looking request right behind it: it must never be read as a request.
                try connection.send(smuggle.bytes + "GET /echo/smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
                let response = try await connection.readResponse(method: smuggle.bytes.hasPrefix("GET") ? "GET" : "POST")
                #expect(response.status == 400, "\(smuggle): \(response)")
                #expect(response.header("x-verge-error") == "bad_request", "\(smuggle): \(response)")
                // NIO sends no body after a head that answers CONNECT; the closed connection ends the response.
                if smuggle.name != "CONNECT" {
                    #expect(response.text.contains("bad_request"), "\(smuggle): \(response)")
                }
                #expect(response.header("connection") == "close", "\(smuggle)")
                let closed = await connection.waitForClose()
                #expect(closed, "\(smuggle): connection left open")
            }
            // No host saw any of them.
            #expect(try await Self.hostTraffic(cluster) == before)
        }
    }

    @Test func connectionFieldsStayAndForwardingFieldsAreTheGateways() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let connection = try RawHTTPConnection(url: cluster.gatewayURL)
            try connection.send(
                "GET /echo HTTP/1.1\r\nHost: echo.localhost\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
                    + "Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eA==\r\n"
                    + "X-Forwarded-For: 203.0.113.7\r\nX-Request-Id: trace-42\r\nX-Kept: yes\r\n\r\n")
            let response = try await connection.readResponse()
            #expect(response.status == 200, "\(response)")
            #expect(response.header("x-request-id") == "trace-42")
            let headers = try #require(
                (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["headers"]
                    as? [String: Any])
            for name in ["connection", "x-secret", "keep-alive", "te", "upgrade", "proxy-authorization"] {
                #expect(headers[name] == nil, "\(name) reached the function")
            }
            #expect(headers["x-kept"] as? String == "yes")
            // Loopback is a trusted proxy in the local cluster: its chain is extended, not replaced.
            #expect(headers["x-forwarded-for"] as? String == "203.0.113.7, 127.0.0.1")
            #expect(headers["x-forwarded-proto"] as? String == "http")
            #expect(headers["x-forwarded-host"] as? String == "echo.localhost")
            #expect(headers["x-request-id"] as? String == "trace-42")

            // An id that is not safe to log or echo is replaced by a fresh one, the same the function sees.
            try connection.send("GET /echo HTTP/1.1\r\nHost: a\r\nX-Request-Id: bad id\"\r\n\r\n")
            let replaced = try await connection.readResponse()
            let id = try #require(replaced.header("x-request-id"))
            #expect(id.count == 32 && id != "bad id\"")
            let seen = try #require(
                (try JSONSerialization.jsonObject(with: Data(replaced.body)) as? [String: Any])?["headers"]
                    as? [String: Any])
            #expect(seen["x-request-id"] as? String == id)
        }
    }

    @Test func http10ClientsGetBodiesEndedByTheConnection() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            // HTTP/1.0 has no chunked coding: the body runs to the end of the connection, which then closes.
            let connection = try RawHTTPConnection(url: cluster.gatewayURL)
            try connection.send("GET /echo HTTP/1.0\r\nHost: a\r\n\r\n")
            let bytes = String(decoding: try await connection.readToEnd(), as: UTF8.self)
            #expect(bytes.hasPrefix("HTTP/1.0 200 "), "\(bytes.prefix(200))")
            let head = bytes.components(separatedBy: "\r\n\r\n").first ?? ""
            #expect(!head.lowercased().contains("transfer-encoding"), "\(head)")
            #expect(bytes.contains("\"path\":\"/echo\"") || bytes.contains("\"path\": \"/echo\""))
        }
    }

    @Test func aClientThatStopsSendingGetsItsAnswerAndTheConnectionCloses() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let connection = try RawHTTPConnection(url: cluster.gatewayURL)
            try connection.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            connection.shutdownWrite()
            let response = try await connection.readResponse()
            #expect(response.status == 200, "\(response)")
            #expect(await connection.waitForClose())
            // An idle connection that is half-closed is closed at once, not after the idle timeout.
            let idle = try RawHTTPConnection(url: cluster.gatewayURL, timeout: .seconds(5))
            idle.shutdownWrite()
            #expect(await idle.waitForClose())
        }
    }

    @Test func slowHeadsAndOversizedBodiesAreCutOff() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-proxy-config")
        defer { directory.remove() }
        let config = directory.path + "/cluster.json"
        try Data(#"{"header_timeout_s": 1}"#.utf8).write(to: URL(fileURLWithPath: config))
        try await LocalClusterProcess.with(extraArguments: ["--config", config]) { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            // Slowloris: a head that trickles in one byte at a time is cut off at the deadline, although the
            // connection is never idle for long.
            let slow = try RawHTTPConnection(url: cluster.gatewayURL, timeout: .seconds(10))
            let clock = ContinuousClock()
            let start = clock.now
            var closedEarly = false
            for byte in "GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: ".utf8 {
                if !slow.trySend([byte]) {
                    closedEarly = true
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
                if clock.now - start > .seconds(6) { break }
            }
            let closed = closedEarly ? true : await slow.waitForClose()
            #expect(closed)
            #expect(clock.now - start < .seconds(6), "a trickling head kept its connection")
            // A well-behaved keep-alive connection may sit idle between requests for longer than that.
            let calm = try RawHTTPConnection(url: cluster.gatewayURL)
            try calm.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try await calm.readResponse().status == 200)
            try await Task.sleep(for: .milliseconds(1500))
            try calm.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try await calm.readResponse().status == 200)

            // A body declared larger than the limit is refused before it is sent anywhere.
            let big = try RawHTTPConnection(url: cluster.gatewayURL)
            try big.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 7000000\r\n\r\n")
            let refused = try await big.readResponse(method: "POST")
            #expect(refused.status == 413, "\(refused)")
            #expect(refused.text.contains("payload_too_large"))
        }
    }
}
