import GRDB
import GRDBSQLite
import Synchronization
import VergeCore

/// Group commit for ``HostLedger/record(_:)``: records that arrive while a transaction is being written are
/// committed together in the next one, so concurrent calls share the cost of a commit.
///
/// The first caller becomes the leader and writes, on its own thread and synchronously, its record and every
/// record waiting at that moment in one transaction through the database's writer connection, then resumes their
/// callers. While records keep arriving it writes them too, for at most ``maximumRounds`` transactions, then
/// hands leadership to the next waiting caller. A caller that finds no transaction in progress (the common case
/// below saturation) therefore commits without suspending and without waking any other thread: no hop to a writer
/// queue or thread and back. A caller waits for at most the transactions in progress plus its own.
///
/// The write is not abandoned when the calling task is cancelled: once `commit` is called, the record is committed
/// or the call throws the database's error.
final class GroupCommitter: Sendable {
    private enum Turn {
        /// Another caller committed this record (or failed to).
        case committed(Result<Void, any Error>)
        /// This caller now writes the next transaction.
        case lead
    }

    private struct Waiter {
        var record: UsageRecord
        var continuation: CheckedContinuation<Turn, Never>
    }

    private struct State {
        var leading = false
        var waiting: [Waiter] = []
    }

    /// Transactions a leader writes before it hands leadership on, so its own response is not held up for long.
    static let maximumRounds = 3

    private let database: any DatabaseWriter
    private let state = Mutex(State())

    init(database: any DatabaseWriter) {
        self.database = database
    }

    func commit(_ record: UsageRecord) async throws {
        let leads = state.withLock { state in
            if state.leading { return false }
            state.leading = true
            return true
        }
        if leads { return try lead(with: record).get() }
        let turn = await withCheckedContinuation { (continuation: CheckedContinuation<Turn, Never>) in
            let leadsNow = state.withLock { state in
                if state.leading {
                    state.waiting.append(Waiter(record: record, continuation: continuation))
                    return false
                }
                state.leading = true
                return true
            }
            if leadsNow { continuation.resume(returning: .lead) }
        }
        switch turn {
        case .committed(let result): try result.get()
        case .lead: try lead(with: record).get()
        }
    }

    /// Writes `own` and what waits, up to ``maximumRounds`` transactions, then hands leadership on; returns the
    /// result for `own`.
    private func lead(with own: UsageRecord) -> Result<Void, any Error> {
        var ownResult: Result<Void, any Error>?
        var records: [UsageRecord] = []
        for _ in 0..<Self.maximumRounds {
            let others = state.withLock { state in
                defer { state.waiting.removeAll(keepingCapacity: true) }
                return state.waiting
            }
            records.removeAll(keepingCapacity: true)
            if ownResult == nil { records.append(own) }
            for waiter in others { records.append(waiter.record) }
            if records.isEmpty { break }
            var results = write(records)[...]
            if ownResult == nil { ownResult = results.popFirst() }
            for (waiter, result) in zip(others, results) { waiter.continuation.resume(returning: .committed(result)) }
        }
        let next: Waiter? = state.withLock { state in
            if state.waiting.isEmpty {
                state.leading = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        // The next leader writes its own record with whatever has gathered by then.
        next?.continuation.resume(returning: .lead)
        return ownResult!
    }

    /// Writes `records` in one transaction; one result per record. A duplicate invocation id fails only that
    /// record; any other error fails the whole transaction, and so every record.
    ///
    /// Sequence numbers are assigned here, inside the write transaction, from the highest one in use: above every
    /// kept record and above the shipping cursor, so a number is never reused even when pruning deleted the newest
    /// rows (the cursor covers them). This replaces `AUTOINCREMENT`, whose `sqlite_sequence` row cost a page write
    /// per transaction.
    private func write(_ records: [UsageRecord]) -> [Result<Void, any Error>] {
        do {
            return try database.write { db in
                var seq = try Int64.fetchOne(db.cachedStatement(sql: Self.highestSequenceSQL)) ?? 0
                let statement = try db.cachedStatement(sql: Self.insertSQL)
                // Values are bound straight to SQLite below (GRDB's `StatementArguments` boxed each of the 24 values
                // of every record); GRDB still resets, steps and checks the statement.
                statement.setUncheckedArguments(StatementArguments())
                let handle = statement.sqliteStatement
                var results: [Result<Void, any Error>] = []
                results.reserveCapacity(records.count)
                for record in records {
                    Self.bind(record, seq: seq + 1, to: handle)
                    try statement.execute()
                    if db.changesCount == 1 {
                        seq += 1
                        results.append(.success(()))
                    } else {
                        results.append(
                            .failure(
                                VergeError(.badRequest, "invocation id '\(record.invocationID)' is already recorded")
                            )
                        )
                    }
                }
                return results
            }
        } catch {
            let wrapped = VergeError(.internalError, "usage ledger: commit failed", underlying: error)
            return Array(repeating: .failure(wrapped), count: records.count)
        }
    }

    /// The highest sequence number in use: the newest kept record's, or the shipping cursor when pruning deleted it.
    static let highestSequenceSQL = """
        SELECT MAX(COALESCE((SELECT MAX(seq) FROM usage_records), 0), (SELECT shipped_through FROM shipping WHERE id = 1))
        """

    /// Inserts one record with an explicit sequence number. Only an invocation id already kept is skipped; a taken
    /// sequence number is an error (it cannot happen while every insert goes through here).
    static let insertSQL =
        "INSERT INTO usage_records (seq, \(UsageRecord.columnList)) VALUES (?, \(UsageRecord.placeholders)) "
        + "ON CONFLICT (invocation_id) DO NOTHING"

    /// Binds `seq` and the record's ``UsageRecord/columnList`` values to ``insertSQL``'s parameters.
    private static func bind(_ record: UsageRecord, seq: Int64, to handle: SQLiteStatement) {
        var index: Int32 = 0
        func int(_ value: Int64) {
            index += 1
            sqlite3_bind_int64(handle, index, value)
        }
        func text(_ value: String?) {
            index += 1
            guard var value else {
                sqlite3_bind_null(handle, index)
                return
            }
            value.withUTF8 { bytes in
                // An empty buffer may have no address, which SQLite would take for NULL.
                let base = bytes.baseAddress.map(UnsafeRawPointer.init) ?? UnsafeRawPointer(emptyText.utf8Start)
                sqlite3_bind_text(handle, index, base.assumingMemoryBound(to: CChar.self), Int32(bytes.count), transient)
            }
        }
        int(seq)
        text(record.invocationID)
        text(record.tenant)
        text(record.function)
        text(record.version)
        text(record.host)
        int(record.startTimeUs)
        int(record.durationUs)
        int(record.queueUs)
        int(record.coldStart ? 1 : 0)
        int(record.initUs)
        text(record.status.rawValue)
        int(Int64(record.httpStatus))
        int(record.requestBytes)
        int(record.responseBytes)
        text(record.limit)
        int(Int64(record.versionNumber))
        text(record.region)
        int(record.billedMs)
        int(record.cpuUs)
        int(record.memoryPeakBytes)
        int(Int64(record.memoryMB))
        int(record.memoryMBMs)
        text(record.reason)
        assert(index == 1 + Int32(UsageRecord.columnCount))
    }

    /// SQLite copies bound text before `sqlite3_bind_text` returns.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }
    private static let emptyText: StaticString = ""
}
