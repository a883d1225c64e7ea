import Foundation
import Testing
import VergeTestSupport

/// The local cluster as a user drives it: `verge dev`, `verge deploy`, real HTTP through the gateway.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct RoutingTests {
    static let paris = (48.85, 2.35)
    static let newYork = (40.71, -74.01)
    static let tokyo = (35.68, 139.69)

    @Test func routesEachClientToTheNearestHost() async throws {
        try await LocalClusterProcess.with { cluster in
            let deploy = try await cluster.deploy(Paths.sampleFunction("hello"))
            #expect(deploy.status == 0, "deploy failed: \(deploy.stderr)")

            for (location, expected) in [(Self.paris, "fra"), (Self.newYork, "iad"), (Self.tokyo, "sin")] {
                let response = try await TestHTTP.get(cluster.gatewayURL + "/hello", from: location)
                #expect(response.status == 200)
                #expect(response.header("x-verge-host") == expected)
                #expect(response.header("x-verge-invocation-id")?.count == 32)
                #expect(response.text.contains("Hello from \(expected)!"))
                let timing = response.headers["server-timing"].joined(separator: ", ")
                #expect(timing.contains("exec;dur="))
                #expect(timing.contains("gateway;dur="))
            }
        }
    }

    @Test func pathsBelowTheFunctionReachItWithTheirQuery() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let response = try await TestHTTP.get(cluster.gatewayURL + "/echo/a/b?x=1&y=two", from: Self.tokyo)
            #expect(response.status == 200)
            let body = try response.json()
            #expect(body["path"] as? String == "/echo/a/b")
            #expect(body["query"] as? String == "x=1&y=two")
            let client = try #require(body["client"] as? [String: Any])
            #expect(client["latitude"] as? Double == 35.68)
            #expect(client["source"] as? String == "header")
            #expect((body["host"] as? [String: Any])?["name"] as? String == "sin")
            // stdio, the channel, and the descriptor listing itself: nothing of the host's.
            let fds = try #require(body["fds"] as? [Int])
            #expect(fds.count == 5 && fds.prefix(4) == [0, 1, 2, 3], "worker sees descriptors \(fds)")
        }
    }

    @Test func withoutGeoHeadersTheDefaultLocationDecides() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let response = try await TestHTTP.get(cluster.gatewayURL + "/echo")
            #expect(response.header("x-verge-host") == "fra")
            let client = try #require(try response.json()["client"] as? [String: Any])
            #expect(client["source"] as? String == "default")
        }
    }

    @Test func clientsCannotForgePlatformHeaders() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            // A client naming a location of its own, straight at a host: refused, it is not the gateway.
            let host = try #require(cluster.hostURLs["sin"])
            let located = try await TestHTTP.request(
                host + "/echo", headers: [("x-verge-client-latitude", "1.0"), ("x-verge-client-longitude", "2.0")])
            #expect(located.status == 503 && located.header("x-verge-error") == "untrusted_caller", "\(located.text)")
            // Other platform-looking headers (a cluster key of its own) never reach the function.
            let direct = try await TestHTTP.request(host + "/echo", headers: [("x-verge-cluster-key", "guess")])
            #expect(direct.status == 200)
            #expect(try direct.json()["client"] is NSNull)
            let headers = try #require(try direct.json()["headers"] as? [String: Any])
            #expect(headers.keys.allSatisfy { !$0.hasPrefix("x-verge-") })
        }
    }

    @Test func unknownFunctionIsA404InTheErrorShape() async throws {
        try await LocalClusterProcess.with { cluster in
            let response = try await TestHTTP.get(cluster.gatewayURL + "/nothing-here")
            #expect(response.status == 404)
            let error = try #require(try response.json()["error"] as? [String: Any])
            #expect(error["code"] as? String == "function_not_found")
        }
    }

    @Test func bodiesStreamBothWays() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("stream")).status == 0)
            var body = [UInt8](repeating: 0, count: 1_000_000)
            for index in body.indices { body[index] = UInt8(truncatingIfNeeded: index &* 31) }
            let echoed = try await TestHTTP.request(cluster.gatewayURL + "/echo", method: .POST, body: body)
            #expect(echoed.status == 200)
            let json = try echoed.json()
            #expect(json["body_length"] as? Int == body.count)
            let expected = try await blocking { [body] in sha256Hex(body) }
            #expect(json["body_sha256"] as? String == expected)

            let streamed = try await TestHTTP.get(cluster.gatewayURL + "/stream?chunks=4")
            #expect(streamed.status == 200)
            #expect(streamed.text == "chunk 0\nchunk 1\nchunk 2\nchunk 3\n")
        }
    }
}

/// SHA-256 through the system's `sha256sum`, independent of the code under test. Blocks: call it through `blocking`.
func sha256Hex(_ bytes: [UInt8]) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    let input = Pipe().closingOnExec()
    let output = Pipe().closingOnExec()
    process.standardInput = input
    process.standardOutput = output
    try? ProcessLaunch.run(process)
    input.fileHandleForWriting.write(Data(bytes))
    try? input.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(String(decoding: data, as: UTF8.self).prefix(64))
}
