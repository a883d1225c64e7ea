import Foundation
import Testing
import VergeTestSupport

/// A function's answer cannot break HTTP: whatever the `hostile` fixture sends, the host and the gateway frame
/// each response themselves, so the next request on the same (pipelined, kept-alive, pooled) connection gets its
/// own answer and not a byte of anyone else's.
@Suite(.serialized, .cluster, .timeLimit(.minutes(4)))
struct ResponseFramingTests {
    static let marker = "HOSTILE-BYTES-"

    /// One hostile call and what the client must see of it.
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var method = "GET"
        var status: Int
        /// Longest the three pipelined exchanges may take.
        var within: Duration? = nil
        var check: @Sendable (RawResponse) -> Void = { _ in }
        var description: String { "\(method) \(name)" }
    }

    static let cases: [Case] = [
        Case(name: "204-body", status: 204) { response in
            #expect(response.body.isEmpty)
            #expect(response.header("content-length") == nil && response.header("transfer-encoding") == nil)
        },
        Case(name: "205-body", status: 205) { response in
            #expect(response.body.isEmpty)
            #expect(response.header("content-length") == "0" && response.header("transfer-encoding") == nil)
        },
        Case(name: "304-body", status: 304) { response in
            #expect(response.body.isEmpty)
            #expect(response.header("etag") == "\"x\"")
        },
        Case(name: "1xx", status: 502) { response in
            #expect(response.text.contains("invalid_response"))
            #expect(response.header("link") == nil)
        },
        Case(name: "head-body", method: "HEAD", status: 200) { response in
            #expect(response.body.isEmpty)
        },
        Case(name: "framing", status: 200) { response in
            // The function's content-length, transfer-encoding and connection are not the host's framing: the
            // host's own Content-Length is the true one.
            #expect(response.text == String(repeating: ResponseFramingTests.marker, count: 4))
            #expect(response.header("content-length") == "56")
            #expect(response.header("connection") != "close")
            #expect(
                !response.headers.contains { $0.name == "content-length" && ($0.value == "3" || $0.value == "1000") })
        },
        Case(name: "crlf", status: 502) { response in
            #expect(response.header("x-injected") == nil && response.header("x-note") == nil)
            #expect(!response.text.contains(ResponseFramingTests.marker))
        },
        Case(name: "bad-name", status: 502) { response in
            #expect(response.text.contains("invalid_response"))
        },
        Case(name: "huge-header", status: 502) { response in
            #expect(response.header("x-huge") == nil)
            #expect(response.headBytes.count < 4096)
        },
        Case(name: "many-headers", status: 502) { response in
            #expect(response.header("x-h1") == nil)
        },
        // A body that does not match the length its head announced fails before a byte of it is sent.
        Case(name: "length-more", status: 502) { response in
            #expect(response.text.contains("worker_crashed"))
            #expect(!response.text.contains(ResponseFramingTests.marker))
        },
        Case(name: "length-fewer", status: 502) { response in
            #expect(response.text.contains("worker_crashed"))
            #expect(!response.text.contains(ResponseFramingTests.marker))
        },
        // The 502 does not wait for the rest of a rejected response: the worker is stopped at once.
        Case(name: "slow-after-bad-head", status: 502, within: .seconds(8)) { response in
            #expect(!response.text.contains(ResponseFramingTests.marker))
        },
    ]

    @Test func hostileResponsesStayInTheirOwnExchange() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("hostile")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let host = try #require(cluster.hostURLs["fra"])
            for target in [host, cluster.gatewayURL] {
                for hostileCase in Self.cases {
                    try await Self.pipeline(hostileCase, at: target)
                }
            }
            // Rejected heads and dropped bodies are logged; the bytes themselves are not.
            #expect(cluster.log.contains("function response rejected"))
            #expect(cluster.log.contains("response body dropped"))
            #expect(!cluster.log.contains(Self.marker))
        }
    }

    /// A body a worker has whole goes out with its exact Content-Length; one over the 1 MiB a head may announce is
    /// streamed (chunked) — both arrive intact, straight from a host and through the gateway.
    @Test func wholeBodiesCarryTheirLengthAndLargerOnesAreStreamed() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let host = try #require(cluster.hostURLs["fra"])
            for target in [host, cluster.gatewayURL] {
                for pad in [0, 1000, 3 << 20] {
                    let (response, rest) = try await blocking {
                        let connection = try RawHTTPConnection(url: target)
                        let authority = target.replacingOccurrences(of: "http://", with: "")
                        try connection.send(
                            "GET /echo?pad=\(pad) HTTP/1.1\r\nHost: \(authority)\r\nConnection: close\r\n\r\n")
                        return (try connection.readResponse(), try connection.readToEnd())
                    }
                    #expect(response.status == 200, "pad \(pad) at \(target)")
                    let body = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
                    #expect((body?["pad"] as? String)?.utf8.count == pad, "pad \(pad) at \(target)")
                    if pad < 1 << 20 {
                        #expect(response.header("content-length") == String(response.body.count), "pad \(pad)")
                    } else {
                        #expect(response.header("transfer-encoding") == "chunked", "pad \(pad) at \(target)")
                    }
                    #expect(rest.isEmpty)
                }
            }
        }
    }

    /// Sends the hostile request and two ordinary ones back to back on one connection and parses all three answers.
    static func pipeline(_ hostileCase: Case, at url: String) async throws {
        let authority = url.replacingOccurrences(of: "http://", with: "")
        let clock = ContinuousClock()
        let start = clock.now
        let (hostile, ok, echo, rest) = try await blocking {
            let connection = try RawHTTPConnection(url: url)
            try connection.send(
                "\(hostileCase.method) /hostile?case=\(hostileCase.name) HTTP/1.1\r\nHost: \(authority)\r\n\r\n"
                    + "GET /hostile?case=ok HTTP/1.1\r\nHost: \(authority)\r\n\r\n"
                    + "GET /echo/after HTTP/1.1\r\nHost: \(authority)\r\nConnection: close\r\n\r\n")
            let hostile = try connection.readResponse(method: hostileCase.method)
            let ok = try connection.readResponse()
            let echo = try connection.readResponse()
            return (hostile, ok, echo, try connection.readToEnd())
        }
        #expect(hostile.status == hostileCase.status, "\(hostileCase) at \(url): \(hostile)")
        if let within = hostileCase.within {
            #expect(clock.now - start < within, "\(hostileCase) at \(url) took \(clock.now - start)")
        }
        hostileCase.check(hostile)
        #expect(ok.status == 200 && ok.text == "fine", "after \(hostileCase) at \(url): \(ok)")
        #expect(echo.status == 200, "after \(hostileCase) at \(url): \(echo)")
        let body = try JSONSerialization.jsonObject(with: Data(echo.body)) as? [String: Any]
        #expect(body?["path"] as? String == "/echo/after")
        #expect(
            rest.isEmpty,
            "\(rest.count) stray bytes after the last response: \(String(decoding: rest, as: UTF8.self).prefix(200))")
    }
}
