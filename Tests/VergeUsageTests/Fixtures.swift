import Foundation
import VergeCore

/// A record with plausible values; `index` makes the invocation id and the start time distinct.
func makeRecord(
    _ index: Int, tenant: String = "acme", function: String = "hello", startTimeUs: Int64? = nil,
    status: InvocationStatus = .ok
) -> UsageRecord {
    UsageRecord(
        invocationID: "inv-\(tenant)-\(index)",
        tenant: tenant,
        function: function,
        version: "v1",
        host: "host-a",
        startTimeUs: startTimeUs ?? 1_700_000_000_000_000 + Int64(index) * 1_000,
        durationUs: 1_234 + Int64(index),
        queueUs: 5,
        coldStart: index % 2 == 0,
        initUs: index % 2 == 0 ? 40_000 : 0,
        status: status,
        httpStatus: 200,
        requestBytes: 100,
        responseBytes: 2_000 + Int64(index)
    )
}

/// Runs `body` with a fresh directory, removed afterwards.
func withTemporaryDirectory(_ body: (String) async throws -> Void) async throws {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("verge-usage-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    try await body(path)
}
