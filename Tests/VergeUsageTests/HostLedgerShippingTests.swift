import Foundation
import GRDB
import Testing
import VergeCore
import VergeUsage

/// What the shipper reads (``HostLedger/unshippedShipment(host:limit:)``) and the sequence numbers it acknowledges.
@Suite struct HostLedgerShippingTests {
    @Test func shipmentIsTheUnshippedRecordsAsAUsageBatch() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            #expect(try await ledger.unshippedShipment(host: "fra", limit: 10) == nil)
            var records = (0..<5).map { makeRecord($0) }
            records[1].status = .limitExceeded
            records[1].limit = "cpu"
            records[2].status = .rejected
            records[2].reason = "capacity"
            records[3].function = "quote\"and\\back\nslash/é"
            records[3].memoryMB = 3008
            for record in records { try await ledger.record(record) }
            let seqs = try await ledger.unshipped(limit: 100).map(\.seq)

            let first = try #require(try await ledger.unshippedShipment(host: "fra", limit: 3))
            #expect(first.count == 3)
            #expect(first.through == seqs[2])
            let batch = try JSONDecoder().decode(UsageBatch.self, from: Data(first.body))
            #expect(batch.host == "fra")
            #expect(batch.records == Array(records.prefix(3)))
            #expect(first.body == UsageBatch.wireJSON(host: "fra", records: records.prefix(3)))

            try await ledger.markShipped(through: first.through)
            let rest = try #require(try await ledger.unshippedShipment(host: "fra", limit: 100))
            #expect(rest.count == 2)
            #expect(rest.through == seqs[4])
            #expect(
                try JSONDecoder().decode(UsageBatch.self, from: Data(rest.body)).records == Array(records.suffix(2)))
            try await ledger.markShipped(through: rest.through)
            #expect(try await ledger.unshippedShipment(host: "fra", limit: 100) == nil)

            let error = try await #require(throws: VergeError.self) {
                try await ledger.unshippedShipment(host: "fra", limit: HostLedger.maximumLimit + 1)
            }
            #expect(error.code == .badRequest)
        }
    }

    /// A host database whose newest records were shipped and pruned before sequence numbers stopped using
    /// AUTOINCREMENT: the upgrade keeps every record and the cursor, and a new record is numbered above the cursor,
    /// so it is shipped.
    @Test func upgradeFromAutoincrementKeepsRecordsAndNumbersNewOnesAboveTheCursor() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/host.sqlite"
            let old = (0..<5).map { makeRecord($0) }
            do {
                let pool = try DatabasePool(path: path)
                try await pool.write { db in
                    try db.execute(sql: hostLedgerV2Schema)
                    try insertV1(old, into: db)
                    // Records 1…5 were committed; all five shipped, the newest two pruned.
                    try db.execute(sql: "INSERT INTO shipping (id, shipped_through) VALUES (1, 5)")
                    try db.execute(sql: "DELETE FROM usage_records WHERE seq > 3")
                }
            }
            let ledger = try HostLedger(path: path)
            #expect(try await ledger.allRecords() == Array(old.prefix(3)))
            #expect(try await ledger.shippedCursor() == 5)
            #expect(try await ledger.unshippedShipment(host: "host-a", limit: 10) == nil)

            let fresh = makeRecord(9)
            try await ledger.record(fresh)
            let unshipped = try await ledger.unshipped(limit: 10)
            #expect(unshipped.map(\.record) == [fresh])
            #expect(unshipped.map(\.seq) == [6])
            // A cursor acknowledged past the newest record stops at it.
            try await ledger.markShipped(through: 100)
            #expect(try await ledger.shippedCursor() == 6)

            let pool = try DatabasePool(path: path)
            let schema = try await pool.read { db in
                try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'usage_records'")
            }
            #expect(schema?.contains("AUTOINCREMENT") == false)
        }
    }

    /// Sequence numbers follow commit order across group commits, a duplicate consumes none, and every record of
    /// a group is stored with its own values.
    @Test func sequenceNumbersAreConsecutiveInCommitOrder() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            try await ledger.record(makeRecord(0))
            await #expect(throws: VergeError.self) { try await ledger.record(makeRecord(0)) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 1..<200 { group.addTask { try await ledger.record(makeRecord(index)) } }
                try await group.waitForAll()
            }
            let unshipped = try await ledger.unshipped(limit: 1000)
            #expect(unshipped.map(\.seq) == Array(1...200))
            // Every record is stored with its own values (records committed in one group must not share any).
            let byID = Dictionary(uniqueKeysWithValues: unshipped.map { ($0.record.invocationID, $0.record) })
            #expect(byID.count == 200)
            for index in 0..<200 { #expect(byID[makeRecord(index).invocationID] == makeRecord(index)) }
        }
    }
}
