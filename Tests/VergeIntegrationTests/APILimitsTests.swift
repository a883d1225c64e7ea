import Foundation
import Testing
import VergeTestSupport

/// Abuse limits, against the real components on real sockets: write rate per token, connection caps and idle
/// timeouts on every listener, bounded log queries, uploads streamed to disk.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct APILimitsTests {
    /// Runs `body` with a standalone component, stopping it afterwards whatever happens.
    static func withComponent<T>(
        _ arguments: [String], _ body: (ComponentProcess, TemporaryDirectory) async throws -> T
    ) async throws -> T {
        let scratch = try TemporaryDirectory(prefix: "verge-limits")
        defer { scratch.remove() }
        // Hosts and gateways refuse to start without a credential: give them one (the control plane they name is
        // not there; only their listeners are under test).
        for (directory, kind) in [("fra", "host"), ("gw", "gw")] {
            try FileManager.default.createDirectory(
                atPath: scratch.path + "/" + directory, withIntermediateDirectories: true)
            let credential = "verge_\(kind)_\(String(repeating: "1", count: 16))_\(String(repeating: "a", count: 64))"
            FileManager.default.createFile(
                atPath: scratch.path + "/\(directory)/credential", contents: Data(credential.utf8),
                attributes: [.posixPermissions: 0o600])
        }
        let component = try await ComponentProcess.start(
            arguments.map { $0.replacingOccurrences(of: "SCRATCH", with: scratch.path) },
            logPath: scratch.path + "/component.log")
        do {
            let result = try await body(component, scratch)
            await component.stop()
            return result
        } catch {
            await component.stop()
            let log = (try? String(contentsOfFile: scratch.path + "/component.log", encoding: .utf8)) ?? ""
            FileHandle.standardError.write(Data("---- component log ----\n\(log)\n".utf8))
            throw error
        }
    }

    static func adminToken(_ scratch: TemporaryDirectory) throws -> String {
        try String(contentsOfFile: scratch.path + "/cp/admin-token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let controlPlane = [
        "control-plane", "--api", "127.0.0.1:0", "--data", "SCRATCH/cp",
    ]

    @Test func writesAreRateLimitedPerToken() async throws {
        // One token per 1000 s: none comes back while the test runs, however slow the machine (how buckets refill
        // is TokenBucketsTests' work, with a clock of their own).
        try await Self.withComponent(Self.controlPlane + ["--write-rate", "0.001", "--write-burst", "3"]) {
            cp, scratch in
            let api = try #require(cp.ready["api"])
            let auth = [("authorization", "Bearer " + (try Self.adminToken(scratch)))]
            for _ in 0..<3 {
                #expect(
                    try await TestHTTP.request(api + "/v1/functions/nothing", method: .DELETE, headers: auth).status
                        == 404)
            }
            let limited = try await TestHTTP.request(api + "/v1/functions/nothing", method: .DELETE, headers: auth)
            #expect(limited.status == 429)
            #expect(limited.text.contains("rate_limited"))
            #expect((900...1000).contains(Int(limited.header("retry-after") ?? "") ?? 0), "\(limited.headers)")
            // Another token has a bucket of its own (this one is refused, but not for its rate); reads and the
            // cluster's own calls are not limited.
            let other = try await TestHTTP.request(
                api + "/v1/functions/nothing", method: .DELETE, headers: [("authorization", "Bearer another")])
            #expect(other.status == 401)
            #expect(try await TestHTTP.request(api + "/v1/functions", headers: auth).status == 200)
            let usage = try await TestHTTP.request(
                api + "/v1/internal/usage", method: .POST, headers: auth,
                body: Array(#"{"host":"fra","records":[]}"#.utf8))
            #expect(usage.status != 429)
        }
    }

    static let listeners: [[String]] = [
        controlPlane,
        [
            "host", "--name", "fra", "--location", "50.11,8.68", "--control-plane", "http://127.0.0.1:9", "--data",
            "SCRATCH/fra",
        ],
        [
            "gateway", "--bind", "127.0.0.1:0", "--control-plane", "http://127.0.0.1:9", "--credential-file",
            "SCRATCH/gw/credential",
        ],
    ]

    @Test(arguments: listeners)
    func everyListenerCapsConnectionsAndClosesIdleOnes(component: [String]) async throws {
        try await Self.withComponent(component + ["--max-connections", "2", "--connection-idle-timeout", "2"]) {
            process, _ in
            let url = try #require(process.ready.values.first)
            let request = "GET /nothing-here HTTP/1.1\r\nHost: test\r\n\r\n"
            try await blocking {
                let clock = ContinuousClock()
                let first = try RawHTTPConnection(url: url)
                let second = try RawHTTPConnection(url: url)
                for connection in [first, second] {
                    try connection.send(request)
                    _ = try connection.readResponse()
                }
                // A third connection while two are open is closed at once.
                let start = clock.now
                let third = try RawHTTPConnection(url: url)
                guard third.waitForClose(), clock.now - start < .milliseconds(1500) else {
                    throw TestFailure("\(component[0]): a connection beyond the limit stayed open")
                }
                // Idle connections are closed after the idle timeout, which frees their places.
                guard first.waitForClose(), second.waitForClose() else {
                    throw TestFailure("\(component[0]): idle connections stayed open")
                }
                let again = try RawHTTPConnection(url: url)
                try again.send(request)
                guard try again.readResponse().status == 404 else {
                    throw TestFailure("\(component[0]): no answer after places were freed")
                }
                // A request head that never ends is idle too.
                let slow = try RawHTTPConnection(url: url)
                try slow.send("GET /nothing-here HTTP/1.1\r\nHost:")
                let slowStart = clock.now
                guard slow.waitForClose(), clock.now - slowStart < .seconds(10) else {
                    throw TestFailure("\(component[0]): an unfinished request head kept its connection")
                }
            }
        }
    }

    @Test func logQueriesAreBounded() async throws {
        try await Self.withComponent(Self.controlPlane) { cp, scratch in
            let api = try #require(cp.ready["api"])
            let admin = try Self.adminToken(scratch)
            let auth = [("authorization", "Bearer " + admin)]
            let deploy = try await CommandRunner.verge(
                ["deploy", Paths.fixtureFunction("echo"), "--no-wait", "--api", api], environment: ["VERGE_TOKEN": admin])
            #expect(deploy.status == 0, "\(deploy.stderr)")
            let tooMany = try await TestHTTP.request(api + "/v1/functions/echo/logs?limit=1001", headers: auth)
            #expect(tooMany.status == 400 && tooMany.text.contains("limit"))
            #expect(try await TestHTTP.request(api + "/v1/functions/echo/logs?limit=1000", headers: auth).status == 200)
        }
    }

    @Test func uploadsStreamToDiskAndLeaveNothingBehind() async throws {
        try await Self.withComponent(Self.controlPlane) { cp, scratch in
            let api = try #require(cp.ready["api"])
            let admin = try Self.adminToken(scratch)
            let bundles = scratch.path + "/cp/bundles"
            @Sendable func partialUploads() -> [Int] {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: bundles)) ?? []
                return names.filter { $0.hasPrefix(".upload-") }.map { name in
                    ((try? FileManager.default.attributesOfItem(atPath: bundles + "/" + name))?[.size] as? Int) ?? 0
                }
            }
            // Half of a 20 MiB upload is on disk while the rest has not been sent.
            let connection = try RawHTTPConnection(url: api)
            try await blocking {
                try connection.send(
                    "POST /v1/functions/big/versions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer \(admin)\r\n"
                        + "Content-Length: \(20 << 20)\r\n\r\n")
                try connection.send([UInt8](repeating: 0x5a, count: 8 << 20))
            }
            #expect(try await eventually { partialUploads().contains { $0 >= 8 << 20 } }, "\(partialUploads())")
            // The client breaks off: the partial file goes.
            connection.close()
            #expect(try await eventually { partialUploads().isEmpty }, "\(partialUploads())")

            // More than the 64 MiB limit without a length: refused as it streams, nothing left behind.
            let chunked = try RawHTTPConnection(url: api)
            let answer = try await blocking { () -> RawResponse? in
                try chunked.send(
                    "POST /v1/functions/big/versions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer \(admin)\r\n"
                        + "Transfer-Encoding: chunked\r\n\r\n")
                let chunk = Array("100000\r\n".utf8) + [UInt8](repeating: 0x5a, count: 1 << 20) + Array("\r\n".utf8)
                for _ in 0..<70 where chunked.trySend(chunk) {}
                _ = chunked.trySend(Array("0\r\n\r\n".utf8))
                return try? chunked.readResponse()
            }
            if let answer { #expect(answer.status == 413, "\(answer)") }
            #expect(try await eventually { partialUploads().isEmpty }, "\(partialUploads())")

            // An ordinary upload still works and leaves only its bundle.
            let deploy = try await CommandRunner.verge(
                ["deploy", Paths.fixtureFunction("echo"), "--no-wait", "--api", api], environment: ["VERGE_TOKEN": admin])
            #expect(deploy.status == 0, "\(deploy.stderr)")
            let stored = try FileManager.default.contentsOfDirectory(atPath: bundles)
            #expect(stored.count == 1 && stored[0].hasSuffix(".zip"), "\(stored)")
        }
    }
}
