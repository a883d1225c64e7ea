import Foundation
import GRDB
import Synchronization
import Testing
import VergeCore
import VergeUsage

/// A control-plane database the way the control plane opens it: a `DatabasePool` migrated with the store's
/// migrations registered.
private func withStore(_ body: (UsageStore) async throws -> Void) async throws {
    try await withTemporaryDirectory { dir in
        let pool = try DatabasePool(path: dir + "/control.sqlite")
        var migrator = DatabaseMigrator()
        UsageStore.registerMigrations(&migrator)
        try migrator.migrate(pool)
        try await body(UsageStore(database: pool))
    }
}

@Suite struct UsageStoreTests {
    @Test func ingestionIsIdempotent() async throws {
        try await withStore { store in
            let batch = (0..<25).map { makeRecord($0) }
            let first = try await store.ingest(batch)
            #expect(first == IngestResult(inserted: 25, duplicates: 0))
            let again = try await store.ingest(batch)
            #expect(again == IngestResult(inserted: 0, duplicates: 25))
            let countAfterRepeat = try await store.count(tenant: nil)
            #expect(countAfterRepeat == 25)

            // A partly new batch, with a repeat inside it.
            let mixed = Array(batch.suffix(5)) + (25..<30).map { makeRecord($0) } + [makeRecord(29)]
            let mixedResult = try await store.ingest(mixed)
            #expect(mixedResult == IngestResult(inserted: 5, duplicates: 6))
            let countAfterMixed = try await store.count(tenant: nil)
            #expect(countAfterMixed == 30)
            let empty = try await store.ingest([])
            #expect(empty == IngestResult(inserted: 0, duplicates: 0))
        }
    }

    @Test func firstCopyWins() async throws {
        try await withStore { store in
            let original = makeRecord(1)
            var altered = original
            altered.durationUs += 1
            _ = try await store.ingest([original])
            _ = try await store.ingest([altered])
            #expect(try await store.page(after: 0, limit: 10, tenant: nil, function: nil).records == [original])
        }
    }

    @Test func pagesEveryRecordOnceInOrder() async throws {
        try await withStore { store in
            let records = (0..<23).map { makeRecord($0, status: InvocationStatus.allCases[$0 % 6]) }
            _ = try await store.ingest(records)
            var collected: [UsageRecord] = []
            var cursor: Int64 = 0
            while true {
                let page = try await store.page(after: cursor, limit: 7, tenant: nil, function: nil)
                if page.records.isEmpty {
                    #expect(page.nextCursor == cursor)
                    break
                }
                #expect(page.nextCursor > cursor)
                cursor = page.nextCursor
                collected += page.records
            }
            #expect(collected == records)
        }
    }

    @Test func pagingWhileIngestingNeverSkipsOrRepeats() async throws {
        try await withStore { store in
            let first = (0..<100).map { makeRecord($0) }
            let second = (100..<200).map { makeRecord($0) }
            _ = try await store.ingest(first)

            // The writer ingests the second hundred in batches of 3, and waits for the reader to have asked for at
            // least one more page before each batch, so pages and batches interleave.
            let progress = PagingProgress()
            async let written: Void = {
                for (number, start) in stride(from: 0, to: second.count, by: 3).enumerated() {
                    while progress.pagesRequested <= number {
                        try Task.checkCancellation()
                        await Task.yield()
                    }
                    _ = try await store.ingest(Array(second[start..<min(start + 3, second.count)]))
                }
                progress.writerFinished()
            }()

            var collected: [UsageRecord] = []
            var cursor: Int64 = 0
            while true {
                // Read the flag before paging: an empty page after the writer finished means the end.
                let finished = progress.isWriterFinished
                let page = try await store.page(after: cursor, limit: 7, tenant: nil, function: nil)
                progress.pageRequested()
                #expect(page.records.count <= 7)
                if page.records.isEmpty {
                    #expect(page.nextCursor == cursor)
                    if finished { break }
                    await Task.yield()
                    continue
                }
                #expect(page.nextCursor > cursor)
                cursor = page.nextCursor
                collected += page.records
            }
            try await written

            #expect(collected.count == 200)
            #expect(Set(collected.map(\.invocationID)).count == 200)
            #expect(collected == first + second)
        }
    }

    @Test func filtersByTenantAndFunction() async throws {
        try await withStore { store in
            let acme = (0..<10).map { makeRecord($0, tenant: "acme", function: $0 % 2 == 0 ? "even" : "odd") }
            let globex = (0..<6).map { makeRecord($0, tenant: "globex", function: "even") }
            _ = try await store.ingest(zip(acme.prefix(6), globex).flatMap { [$0, $1] } + acme.suffix(4))

            #expect(try await store.count(tenant: "acme") == 10)
            #expect(try await store.count(tenant: "globex") == 6)
            #expect(try await store.count(tenant: "initech") == 0)
            #expect(try await store.count(tenant: nil) == 16)

            let acmePage = try await store.page(after: 0, limit: 100, tenant: "acme", function: nil)
            #expect(acmePage.records == acme)
            let acmeEven = try await store.page(after: 0, limit: 100, tenant: "acme", function: "even")
            #expect(acmeEven.records == acme.filter { $0.function == "even" })
            let allEven = try await store.page(after: 0, limit: 100, tenant: nil, function: "even")
            #expect(allEven.records.count == 5 + 6)

            // Paging a tenant resumes after the last record it returned.
            let firstTwo = try await store.page(after: 0, limit: 2, tenant: "globex", function: nil)
            let rest = try await store.page(after: firstTwo.nextCursor, limit: 100, tenant: "globex", function: nil)
            #expect(firstTwo.records + rest.records == globex)
        }
    }

    @Test(arguments: [0, -3, UsageStore.maximumPageSize + 1])
    func pageLimitIsValidated(limit: Int) async throws {
        try await withStore { store in
            let error = try await #require(throws: VergeError.self) {
                try await store.page(after: 0, limit: limit, tenant: nil, function: nil)
            }
            #expect(error.code == .badRequest)
        }
    }

    @Test func maximumPageSizeIsAccepted() async throws {
        try await withStore { store in
            _ = try await store.ingest([makeRecord(1)])
            let page = try await store.page(after: 0, limit: UsageStore.maximumPageSize, tenant: nil, function: nil)
            #expect(page.records.count == 1)
        }
    }

    @Test func emptyInvocationIDIsRejected() async throws {
        try await withStore { store in
            var record = makeRecord(1)
            record.invocationID = ""
            let error = try await #require(throws: VergeError.self) { try await store.ingest([makeRecord(2), record]) }
            #expect(error.code == .badRequest)
            #expect(try await store.count(tenant: nil) == 0)
        }
    }

    @Test func largeBatchesAreStoredWholeAndOnceAcrossStatements() async throws {
        try await withStore { store in
            // More records than one INSERT statement takes, with repeats inside the batch, across statements and of
            // records stored before.
            let earlier = (0..<70).map { makeRecord($0) }
            #expect(try await store.ingest(earlier) == IngestResult(inserted: 70, duplicates: 0))
            let fresh = (70..<1000).map { makeRecord($0) }
            let batch = Array(earlier.suffix(10)) + fresh + Array(fresh[60..<70]) + [fresh[0], fresh[999 - 70]]
            #expect(try await store.ingest(batch) == IngestResult(inserted: 930, duplicates: 22))
            var stored: [UsageRecord] = []
            var cursor: Int64 = 0
            while true {
                let page = try await store.page(after: cursor, limit: 333, tenant: nil, function: nil)
                if page.records.isEmpty { break }
                stored += page.records
                cursor = page.nextCursor
            }
            #expect(stored == earlier + fresh)
        }
    }

    @Test func pageQueriesReadAnIndexInCursorOrderWithoutSorting() async throws {
        try await withTemporaryDirectory { dir in
            let pool = try DatabasePool(path: dir + "/control.sqlite")
            var migrator = DatabaseMigrator()
            UsageStore.registerMigrations(&migrator)
            try migrator.migrate(pool)
            try await pool.read { db in
                // The indexes every ingested record pays for: the unique key and what paging and the summary read.
                let indexes = try String.fetchAll(
                    db, sql: "SELECT name FROM pragma_index_list('usage_records') WHERE origin = 'c' ORDER BY name")
                #expect(indexes == ["usage_records_start", "usage_records_tenant_seq", "usage_records_tenant_start"])
                for (tenant, function) in [(false, false), (true, false), (true, true), (false, true)] {
                    let plan: [String] = try Row.fetchAll(
                        db, sql: "EXPLAIN QUERY PLAN " + UsageStore.pageSQL(tenant: tenant, function: function),
                        arguments: StatementArguments([0] + (tenant ? ["acme"] : []) + (function ? ["f"] : []) + [10])
                    ).map { $0["detail"] }
                    #expect(plan.allSatisfy { $0.hasPrefix("SEARCH usage_records") }, "\(plan)")
                    #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
                    if tenant { #expect(plan.contains { $0.contains("usage_records_tenant_seq") }, "\(plan)") }
                }
            }
        }
    }

    @Test func pageJSONUsesNextCursor() throws {
        let page = UsagePage(records: [makeRecord(1)], nextCursor: 42)
        let object = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(page)) as? [String: Any]
        )
        #expect(Set(object.keys) == ["records", "next_cursor"])
        #expect(try JSONDecoder().decode(UsagePage.self, from: JSONEncoder().encode(page)) == page)
    }
}

/// What the reader and the writer of the concurrent paging test tell each other.
private final class PagingProgress: Sendable {
    private struct State {
        var pagesRequested = 0
        var writerFinished = false
    }
    private let state = Mutex(State())

    func pageRequested() { state.withLock { $0.pagesRequested += 1 } }
    var pagesRequested: Int { state.withLock { $0.pagesRequested } }
    func writerFinished() { state.withLock { $0.writerFinished = true } }
    var isWriterFinished: Bool { state.withLock { $0.writerFinished } }
}
