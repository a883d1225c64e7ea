import Foundation
import Testing
import VergeTestSupport

/// A Swift function goes through the same path: `verge deploy` builds it with SwiftPM, packs the binary and the
/// hosts run it as a worker speaking the protocol through the VergeRuntime library.
@Suite(.serialized, .cluster, .timeLimit(.minutes(10)))
struct SwiftFunctionTests {
    @Test func deploysAndRunsTheSwiftSample() async throws {
        try await LocalClusterProcess.with { cluster in
            let deploy = try await cluster.verge(["deploy", Paths.sampleFunction("hello-swift")], timeout: .seconds(540))
            #expect(deploy.status == 0, "deploy failed: \(deploy.stderr)")
            let cold = try await TestHTTP.get(cluster.gatewayURL + "/hello-swift", from: (35.68, 139.69))
            #expect(cold.status == 200)
            #expect(cold.header("x-verge-host") == "sin")
            #expect(cold.text.hasPrefix("Hello from sin!"))
            #expect(cold.headers["server-timing"].joined().contains("cold;dur="))
            let warm = try await TestHTTP.get(cluster.gatewayURL + "/hello-swift", from: (35.68, 139.69))
            #expect(warm.status == 200)
            #expect(!warm.headers["server-timing"].joined().contains("cold;dur="))
            let records = try await usageRecords(cluster, expecting: 2)
            #expect(records.map { $0["function"] as? String } == ["hello-swift", "hello-swift"])
        }
    }
}
