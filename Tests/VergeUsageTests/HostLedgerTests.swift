import Foundation
import Testing
import VergeCore
import VergeUsage

@Suite struct HostLedgerTests {
    @Test func recordsAreShippedOnceMarked() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/host/ledger.sqlite")
            let records = (0..<5).map { makeRecord($0) }
            for record in records { try await ledger.record(record) }

            let unshipped = try await ledger.unshipped(limit: 100)
            #expect(unshipped.map(\.record) == records)
            #expect(try await ledger.unshippedCount() == 5)
            #expect(unshipped.map(\.seq) == unshipped.map(\.seq).sorted())
            #expect(try await ledger.unshipped(limit: 2).map(\.record) == Array(records.prefix(2)))

            try await ledger.markShipped(through: unshipped[2].seq)
            #expect(try await ledger.unshipped(limit: 100).map(\.record) == Array(records.suffix(2)))
            #expect(try await ledger.unshippedCount() == 2)

            try await ledger.markShipped(through: unshipped.last!.seq)
            #expect(try await ledger.unshipped(limit: 100).isEmpty)
            #expect(try await ledger.shippedCursor() == unshipped.last!.seq)
            // Shipped records are still kept until pruned.
            #expect(try await ledger.allRecords() == records)
        }
    }

    @Test func markShippedIsMonotonic() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            #expect(try await ledger.shippedCursor() == 0)
            for index in 0..<4 { try await ledger.record(makeRecord(index)) }
            let seqs = try await ledger.unshipped(limit: 10).map(\.seq)

            try await ledger.markShipped(through: seqs[2])
            try await ledger.markShipped(through: seqs[0])
            try await ledger.markShipped(through: -5)
            #expect(try await ledger.shippedCursor() == seqs[2])
            #expect(try await ledger.unshipped(limit: 10).map(\.seq) == [seqs[3]])
        }
    }

    @Test func markShippedNeverPassesTheNewestRecord() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            try await ledger.record(makeRecord(0))
            let first = try #require(try await ledger.unshipped(limit: 10).first)
            // A buggy shipper acknowledging more than it was given must not hide records committed later.
            try await ledger.markShipped(through: first.seq + 1_000)
            #expect(try await ledger.shippedCursor() == first.seq)
            try await ledger.record(makeRecord(1))
            #expect(try await ledger.unshipped(limit: 10).map(\.record) == [makeRecord(1)])
        }
    }

    @Test func duplicateInvocationIDThrowsAndKeepsOneRow() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            let original = makeRecord(7)
            try await ledger.record(original)
            var copy = original
            copy.durationUs = 999_999
            let error = try await #require(throws: VergeError.self) { try await ledger.record(copy) }
            #expect(error.code == .badRequest)
            #expect(try await ledger.allRecords() == [original])
        }
    }

    @Test func concurrentRecordsAreAllCommittedAndDuplicatesFailAlone() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            // 500 distinct records and 50 duplicates of some of them, all at once: group commit batches them, and
            // a duplicate must fail only its own call.
            let failures = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<550 {
                    group.addTask {
                        do {
                            try await ledger.record(makeRecord(index < 500 ? index : index - 500))
                            return false
                        } catch let error as VergeError where error.code == .badRequest {
                            return true
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(failures == 50)
            let ids = try await ledger.allRecords().map(\.invocationID)
            #expect(ids.count == 500)
            #expect(Set(ids) == Set((0..<500).map { makeRecord($0).invocationID }))
        }
    }

    @Test func recordsAndCursorSurviveReopening() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/ledger.sqlite"
            let records = (0..<20).map { makeRecord($0) }
            var shippedThrough: Int64 = 0
            do {
                let ledger = try HostLedger(path: path)
                for record in records { try await ledger.record(record) }
                shippedThrough = try await ledger.unshipped(limit: 100)[9].seq
                try await ledger.markShipped(through: shippedThrough)
            }
            let reopened = try HostLedger(path: path)
            #expect(try await reopened.allRecords() == records)
            #expect(try await reopened.shippedCursor() == shippedThrough)
            #expect(try await reopened.unshipped(limit: 100).map(\.record) == Array(records.suffix(10)))
        }
    }

    @Test(arguments: [0, -1, HostLedger.maximumLimit + 1])
    func limitsAreValidated(limit: Int) async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            let unshipped = try await #require(throws: VergeError.self) { try await ledger.unshipped(limit: limit) }
            #expect(unshipped.code == .badRequest)
            let logs = try await #require(throws: VergeError.self) {
                try await ledger.logs(tenant: "acme", function: "hello", invocationID: nil, limit: limit)
            }
            #expect(logs.code == .badRequest)
        }
    }

    @Test func logsByFunctionAndInvocationNewestLast() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            func line(
                _ n: Int64, function: String = "hello", invocation: String?, stream: String = "stdout"
            ) -> LogLine {
                LogLine(
                    timeUs: 1_000 + n, tenant: "acme", function: function, version: "v1", invocationID: invocation,
                    stream: stream, line: "line \(n)"
                )
            }
            let hello = [
                line(1, invocation: nil),
                line(2, invocation: "a"),
                line(3, invocation: "a", stream: "stderr"),
                line(4, invocation: "b"),
                line(5, invocation: "a"),
            ]
            try await ledger.appendLogs(Array(hello.prefix(3)))
            try await ledger.appendLogs([line(100, function: "other", invocation: "c")])
            try await ledger.appendLogs(Array(hello.suffix(2)))
            try await ledger.appendLogs([])

            #expect(try await ledger.logs(tenant: "acme", function: "hello", invocationID: nil, limit: 100) == hello)
            #expect(
                try await ledger.logs(tenant: "acme", function: "hello", invocationID: "a", limit: 100)
                    == [hello[1], hello[2], hello[4]]
            )
            #expect(
                try await ledger.logs(tenant: "acme", function: "hello", invocationID: "a", limit: 2)
                    == [hello[2], hello[4]]
            )
            #expect(
                try await ledger.logs(tenant: "acme", function: "hello", invocationID: nil, limit: 3)
                    == Array(hello.suffix(3))
            )
            #expect(try await ledger.logs(tenant: "other", function: "hello", invocationID: nil, limit: 10).isEmpty)
        }
    }

    @Test func logLineJSONUsesSnakeCase() throws {
        let line = LogLine(
            timeUs: 5, tenant: "acme", function: "hello", version: "v1", invocationID: "inv", stream: "stderr",
            line: "boom"
        )
        let object = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(line)) as? [String: Any]
        )
        #expect(Set(object.keys) == ["time_us", "tenant", "function", "version", "invocation_id", "stream", "line"])
        #expect(try JSONDecoder().decode(LogLine.self, from: JSONEncoder().encode(line)) == line)
    }

    @Test func pruneRemovesOnlyShippedOldRecordsAndOldLogs() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            let now = Date(timeIntervalSince1970: 1_700_100_000)
            let nowUs = Int64(now.timeIntervalSince1970) * 1_000_000
            let day: Int64 = 86_400 * 1_000_000
            let oldShipped = makeRecord(1, startTimeUs: nowUs - 10 * day)
            let newShipped = makeRecord(2, startTimeUs: nowUs - day / 2)
            let oldUnshipped = makeRecord(3, startTimeUs: nowUs - 20 * day)
            for record in [oldShipped, newShipped, oldUnshipped] { try await ledger.record(record) }
            let seqs = try await ledger.unshipped(limit: 10).map(\.seq)
            try await ledger.markShipped(through: seqs[1])

            func log(_ timeUs: Int64) -> LogLine {
                LogLine(
                    timeUs: timeUs, tenant: "acme", function: "hello", version: "v1", invocationID: nil,
                    stream: "stdout", line: "at \(timeUs)"
                )
            }
            try await ledger.appendLogs([log(nowUs - 3 * day), log(nowUs - day / 4)])

            try await ledger.prune(olderThan: .seconds(86_400), now: now)

            #expect(try await ledger.allRecords() == [newShipped, oldUnshipped])
            #expect(try await ledger.unshipped(limit: 10).map(\.record) == [oldUnshipped])
            #expect(
                try await ledger.logs(tenant: "acme", function: "hello", invocationID: nil, limit: 10)
                    == [log(nowUs - day / 4)]
            )
        }
    }

    @Test func sequenceNumbersAreNotReusedAfterPruningEverything() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try HostLedger(path: dir + "/ledger.sqlite")
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            for index in 0..<3 { try await ledger.record(makeRecord(index)) }
            let last = try #require(try await ledger.unshipped(limit: 10).last).seq
            try await ledger.markShipped(through: last)
            try await ledger.prune(olderThan: .seconds(1), now: now)
            #expect(try await ledger.allRecords().isEmpty)

            // A new record must not fall at or below the shipped cursor, or it would never be shipped.
            try await ledger.record(makeRecord(10))
            let fresh = try await ledger.unshipped(limit: 10)
            #expect(fresh.map(\.record) == [makeRecord(10)])
            #expect(fresh[0].seq > last)
        }
    }
}
