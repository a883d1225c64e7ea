import Foundation
import GRDB
import Testing
import VergeCore
import VergeUsage

/// Schema changes keep every stored record, its cursor and the cursor sequence.
@Suite struct UsageStoreMigrationTests {
    /// Inserts `records` as a store of the first schema did: only the columns that existed then.
    private func insertV1(_ records: [UsageRecord], into db: Database) throws {
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

    @Test func recordsAndCursorsSurviveEveryMigration() async throws {
        try await withTemporaryDirectory { dir in
            let pool = try DatabasePool(path: dir + "/control.sqlite")
            var migrator = DatabaseMigrator()
            UsageStore.registerMigrations(&migrator)
            try migrator.migrate(pool, upTo: "usage.v1")
            let old = (0..<5).map { makeRecord($0) }
            try await pool.write { db in try insertV1(old, into: db) }
            // The newest record is gone (as if pruned): its cursor must still never be handed out again.
            try await pool.write { db in try db.execute(sql: "DELETE FROM usage_records WHERE seq = 5") }

            try migrator.migrate(pool)
            let store = UsageStore(database: pool)
            let after = try await store.page(after: 0, limit: 100, tenant: nil, function: nil)
            // Old records keep their fields; the billing fields they did not have are zero, billed_ms is derived.
            #expect(after.records == Array(old.prefix(4)))
            #expect(after.nextCursor == 4)
            #expect(after.records.allSatisfy { $0.billedMs == ($0.durationUs + 999) / 1000 && $0.cpuUs == 0 })
            var elsewhere = makeRecord(0)
            elsewhere.host = "host-b"
            elsewhere.cpuUs = 1_500
            elsewhere.memoryMB = 256
            #expect(try await store.ingest([elsewhere, makeRecord(1)]) == IngestResult(inserted: 1, duplicates: 1))
            let next = try await store.page(after: after.nextCursor, limit: 100, tenant: nil, function: nil)
            #expect(next.records == [elsewhere])
            #expect(next.nextCursor == 6)
        }
    }

    /// A host database of the first schema opens with its records, its shipping cursor and room for new records.
    @Test func hostLedgerMigratesWithItsRecordsAndCursor() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/host.sqlite"
            do {
                let pool = try DatabasePool(path: path)
                try await pool.write { db in
                    try db.execute(
                        sql: """
                            CREATE TABLE usage_records (
                                seq INTEGER PRIMARY KEY AUTOINCREMENT, invocation_id TEXT NOT NULL UNIQUE,
                                tenant TEXT NOT NULL, function TEXT NOT NULL, version TEXT NOT NULL, host TEXT NOT NULL,
                                start_time_us INTEGER NOT NULL, duration_us INTEGER NOT NULL, queue_us INTEGER NOT NULL,
                                cold_start INTEGER NOT NULL, init_us INTEGER NOT NULL, status TEXT NOT NULL,
                                http_status INTEGER NOT NULL, request_bytes INTEGER NOT NULL,
                                response_bytes INTEGER NOT NULL, limit_name TEXT);
                            CREATE TABLE shipping (id INTEGER PRIMARY KEY CHECK (id = 1), shipped_through INTEGER NOT NULL);
                            INSERT INTO shipping (id, shipped_through) VALUES (1, 2);
                            CREATE TABLE function_logs (id INTEGER PRIMARY KEY, time_us INTEGER NOT NULL,
                                tenant TEXT NOT NULL, function TEXT NOT NULL, version TEXT NOT NULL, invocation_id TEXT,
                                stream TEXT NOT NULL, line TEXT NOT NULL);
                            CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                            INSERT INTO grdb_migrations VALUES ('host-ledger.v1'), ('host-ledger.v2-limit');
                            """)
                    try insertV1((0..<3).map { makeRecord($0) }, into: db)
                }
            }
            let ledger = try HostLedger(path: path)
            #expect(try await ledger.allRecords() == (0..<3).map { makeRecord($0) })
            #expect(try await ledger.shippedCursor() == 2)
            var fresh = makeRecord(3)
            fresh.cpuUs = 42
            fresh.memoryPeakBytes = 10_000_000
            fresh.memoryMB = 128
            fresh.region = "eu-central"
            fresh.versionNumber = 7
            try await ledger.record(fresh)
            #expect(try await ledger.unshipped(limit: 10).map(\.record) == [makeRecord(2), fresh])
            try await ledger.probe()
        }
    }
}
