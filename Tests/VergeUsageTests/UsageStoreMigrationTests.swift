import Foundation
import GRDB
import Testing
import VergeCore
import VergeUsage

/// Schema changes keep every stored record, its cursor and the cursor sequence.
@Suite struct UsageStoreMigrationTests {
    /// Inserts `records` as a store of the first schema did: only the columns that existed then.
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
                    try db.execute(sql: hostLedgerV2Schema)
                    try db.execute(sql: "INSERT INTO shipping (id, shipped_through) VALUES (1, 2)")
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
