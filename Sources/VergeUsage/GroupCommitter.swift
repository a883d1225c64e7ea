import GRDB
import Synchronization
import VergeCore

/// Group commit for ``HostLedger/record(_:)``: records that arrive while a transaction is being written are
/// committed together in the next one, so concurrent calls share the cost of a commit.
///
/// The first caller becomes the leader: it writes its own record and every record waiting at that moment in one
/// transaction, resumes their callers, then hands leadership to the next waiting caller (if any). A caller therefore
/// waits for at most the transaction in progress plus its own; nobody writes on behalf of others forever.
///
/// The write is not abandoned when the calling task is cancelled: once `commit` is called, the record is committed
/// or the call throws the database's error.
final class GroupCommitter: Sendable {
    private enum Turn {
        /// Another caller committed this record.
        case committed
        /// This caller now writes the next transaction.
        case lead
    }

    private struct Waiter {
        var record: UsageRecord
        var continuation: CheckedContinuation<Turn, any Error>
    }

    private struct State {
        var leading = false
        var waiting: [Waiter] = []
    }

    private let database: any DatabaseWriter
    private let state = Mutex(State())

    init(database: any DatabaseWriter) {
        self.database = database
    }

    func commit(_ record: UsageRecord) async throws {
        let turn: Turn = try await withCheckedThrowingContinuation { continuation in
            let leads = state.withLock { state in
                if state.leading {
                    state.waiting.append(Waiter(record: record, continuation: continuation))
                    return false
                }
                state.leading = true
                return true
            }
            if leads { continuation.resume(returning: .lead) }
        }
        guard case .lead = turn else { return }

        let others = state.withLock { state in
            defer { state.waiting.removeAll(keepingCapacity: true) }
            return state.waiting
        }
        let results = await write([record] + others.map(\.record))
        for (waiter, result) in zip(others, results.dropFirst()) {
            waiter.continuation.resume(with: result.map { .committed })
        }
        let next: Waiter? = state.withLock { state in
            if state.waiting.isEmpty {
                state.leading = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
        try results[0].get()
    }

    /// Writes `records` in one transaction; one result per record. A duplicate invocation id fails only that
    /// record; any other error fails the whole transaction, and so every record.
    private func write(_ records: [UsageRecord]) async -> [Result<Void, any Error>] {
        await withCheckedContinuation { (continuation: CheckedContinuation<[Result<Void, any Error>], Never>) in
            database.asyncWrite(
                { db in
                    let statement = try db.cachedStatement(sql: UsageRecord.insertIgnoringDuplicatesSQL(rows: 1))
                    var results: [Result<Void, any Error>] = []
                    results.reserveCapacity(records.count)
                    var values: [DatabaseValue] = []
                    values.reserveCapacity(UsageRecord.columnCount)
                    for record in records {
                        values.removeAll(keepingCapacity: true)
                        record.appendDatabaseValues(to: &values)
                        statement.setUncheckedArguments(StatementArguments(values))
                        try statement.execute()
                        if db.changesCount == 1 {
                            results.append(.success(()))
                        } else {
                            results.append(
                                .failure(
                                    VergeError(
                                        .badRequest,
                                        "invocation id '\(record.invocationID)' is already recorded"
                                    )
                                )
                            )
                        }
                    }
                    return results
                },
                completion: { _, outcome in
                    switch outcome {
                    case .success(let results):
                        continuation.resume(returning: results)
                    case .failure(let error):
                        let wrapped = VergeError(.internalError, "usage ledger: commit failed", underlying: error)
                        continuation.resume(returning: Array(repeating: .failure(wrapped), count: records.count))
                    }
                }
            )
        }
    }
}
