import Foundation
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeControlPlane

/// `POST /v1/internal/usage` over HTTP: a batch is stored whole or not at all, and a refusal names what is wrong.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct UsageIngestTests {
    @Test func aBadRecordRefusesTheWholeBatchNamingTheRecordAndField() async throws {
        try await ControlPlaneHarness.with { harness in
            let fra = try harness.controlPlane.issueHostCredential(name: "fra").token
            let records = (0..<3).map {
                ControlPlaneHarness.usageRecord("call-\($0)", tenant: "default", function: "f", host: "fra")
            }
            func ship(_ body: [UInt8]) async throws -> TestResponse {
                try await harness.request(.POST, "/v1/internal/usage", token: fra, body: body)
            }
            func message(_ response: TestResponse) throws -> String {
                try #require((try response.json()["error"] as? [String: Any])?["message"] as? String)
            }
            let good = String(
                decoding: try ControlPlaneHarness.json(UsageBatch(host: "fra", records: records)), as: UTF8.self)

            // The shape: the third record carries a key the control plane does not know.
            let lastRecord = try #require(good.range(of: #""invocation_id":"call-2""#))
            var unknownKey = good
            unknownKey.replaceSubrange(lastRecord, with: #""invocation_id":"call-2","price":0"#)
            let shape = try await ship(Array(unknownKey.utf8))
            #expect(shape.status == 400)
            #expect(try message(shape).contains("records.2: unknown key 'price'"), "\(shape.text)")

            // A value: the second record's duration is negative.
            var negative = records
            negative[1].durationUs = -5
            let value = try await ship(try ControlPlaneHarness.json(UsageBatch(host: "fra", records: negative)))
            #expect(value.status == 400)
            #expect(try message(value).contains("record 1: duration_us must be between 0 and"), "\(value.text)")

            // Truncated on the way.
            let truncated = try await ship(Array(good.utf8.dropLast(10)))
            #expect(truncated.status == 400)
            #expect(try message(truncated).contains("invalid usage batch"), "\(truncated.text)")

            // Nothing of the refused batches was stored; the good batch is, once.
            #expect(try await harness.store.usage.count(tenant: nil) == 0)
            let stored = try await ship(Array(good.utf8))
            #expect(stored.status == 200)
            #expect(try stored.json()["inserted"] as? Int == 3)
            #expect(try await ship(Array(good.utf8)).json()["duplicates"] as? Int == 3)
            let page = try await harness.store.usage.page(after: 0, limit: 10, tenant: nil, function: nil)
            #expect(page.records == records)
        }
    }
}
