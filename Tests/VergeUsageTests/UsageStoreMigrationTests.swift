import Foundation
import GRDB
import Testing
import VergeCore
import VergeUsage

/// The move from globally unique invocation ids to ids unique per host keeps every record, its cursor and the
/// cursor sequence.
@Suite struct UsageStoreMigrationTests {
    @Test func recordsAndCursorsSurviveTheMoveToPerHostKeys() async throws {
        try await withTemporaryDirectory { dir in
            let pool = try DatabasePool(path: dir + "/control.sqlite")
            var migrator = DatabaseMigrator()
            UsageStore.registerMigrations(&migrator)
            try migrator.migrate(pool, upTo: "usage.v1")
            let store = UsageStore(database: pool)
            _ = try await store.ingest((0..<5).map { makeRecord($0) })
            // The newest record is gone (as if pruned): its cursor must still never be handed out again.
            try await pool.write { db in try db.execute(sql: "DELETE FROM usage_records WHERE seq = 5") }
            let before = try await store.page(after: 0, limit: 100, tenant: nil, function: nil)

            try migrator.migrate(pool)
            let after = try await store.page(after: 0, limit: 100, tenant: nil, function: nil)
            #expect(after == before)
            var elsewhere = makeRecord(0)
            elsewhere.host = "host-b"
            #expect(try await store.ingest([elsewhere, makeRecord(1)]) == IngestResult(inserted: 1, duplicates: 1))
            let next = try await store.page(after: after.nextCursor, limit: 100, tenant: nil, function: nil)
            #expect(next.records == [elsewhere])
            #expect(next.nextCursor == 6)
        }
    }
}
