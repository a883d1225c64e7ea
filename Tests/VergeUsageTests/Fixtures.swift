import Foundation
import GRDB
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

/// The host ledger's tables as its second migration (`host-ledger.v2-limit`) left them, without rows: the starting
/// point of the host ledger's upgrade tests.
let hostLedgerV2Schema = """
    CREATE TABLE usage_records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, invocation_id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL, function TEXT NOT NULL, version TEXT NOT NULL, host TEXT NOT NULL,
        start_time_us INTEGER NOT NULL, duration_us INTEGER NOT NULL, queue_us INTEGER NOT NULL,
        cold_start INTEGER NOT NULL, init_us INTEGER NOT NULL, status TEXT NOT NULL,
        http_status INTEGER NOT NULL, request_bytes INTEGER NOT NULL,
        response_bytes INTEGER NOT NULL, limit_name TEXT);
    CREATE TABLE shipping (id INTEGER PRIMARY KEY CHECK (id = 1), shipped_through INTEGER NOT NULL);
    CREATE TABLE function_logs (id INTEGER PRIMARY KEY, time_us INTEGER NOT NULL,
        tenant TEXT NOT NULL, function TEXT NOT NULL, version TEXT NOT NULL, invocation_id TEXT,
        stream TEXT NOT NULL, line TEXT NOT NULL);
    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
    INSERT INTO grdb_migrations VALUES ('host-ledger.v1'), ('host-ledger.v2-limit');
    """

/// Inserts `records` with the columns of the first usage schema (no billing fields).
func insertV1(_ records: [UsageRecord], into db: Database) throws {
    for r in records {
        try db.execute(
            sql: """
                INSERT INTO usage_records (invocation_id, tenant, function, version, host, start_time_us,
                    duration_us, queue_us, cold_start, init_us, status, http_status, request_bytes, response_bytes)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                r.invocationID, r.tenant, r.function, r.version, r.host, r.startTimeUs, r.durationUs, r.queueUs,
                r.coldStart, r.initUs, r.status.rawValue, r.httpStatus, r.requestBytes, r.responseBytes,
            ])
    }
}
