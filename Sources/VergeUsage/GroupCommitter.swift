import Dispatch
import Foundation
import GRDB
import GRDBSQLite
import Synchronization
import VergeCore

/// Group commit for ``HostLedger/record(_:)``: records that arrive while a transaction is being written are
/// committed together in the next one, so concurrent calls share the cost of a commit.
///
/// One dedicated thread writes every transaction. A caller appends its record to a locked list and suspends; the
/// writer takes everything waiting, commits it in one transaction through the database's writer connection (a
/// synchronous write from a thread of its own runs on that thread: no hop to another queue and back per group),
/// then resumes the callers. While it writes, new records gather for the next transaction; when nothing waits, it
/// sleeps until a caller wakes it. A caller therefore waits for at most the transaction in progress plus its own.
///
/// Below saturation the writer empties the list faster than calls arrive, so nearly every record would get a
/// transaction (and a wake-up) of its own. A woken writer therefore first waits ``gatherWindow`` when records have
/// lately been arriving at least once per window, so the next ones share the transaction: like PostgreSQL's
/// `commit_delay`, it trades up to that much latency per call for fewer commits under load. A caller alone on a quiet
/// host, or calls further apart than the window, are not delayed; right after a burst a few calls may be, until the
/// smoothed rate has followed the load down (ten windows without records reset it).
///
/// The write is not abandoned when the calling task is cancelled: once `commit` is called, the record is committed
/// or the call throws the database's error.
final class GroupCommitter: Sendable {
    private struct Waiter {
        var record: UsageRecord
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var waiting: [Waiter] = []
        /// The writer waits on `wake`; the next caller signals it.
        var writerAsleep = false
        var stopped = false
    }

    /// How long a woken writer lets records gather while they arrive at least this often.
    static let gatherWindow: Duration = .microseconds(200)

    private let database: any DatabaseWriter
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    init(database: any DatabaseWriter) {
        self.database = database
        let thread = Thread { [self] in run() }
        thread.name = "verge.ledger-commit"
        thread.start()
    }

    /// Commits what is waiting, then ends the writer thread. Records committed after this fail.
    func stop() {
        let wakeWriter = state.withLock { state in
            state.stopped = true
            defer { state.writerAsleep = false }
            return state.writerAsleep
        }
        if wakeWriter { wake.signal() }
    }

    func commit(_ record: UsageRecord) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let accepted: Bool? = state.withLock { state in
                if state.stopped { return nil }
                state.waiting.append(Waiter(record: record, continuation: continuation))
                defer { state.writerAsleep = false }
                return state.writerAsleep
            }
            switch accepted {
            case nil: continuation.resume(throwing: VergeError(.shuttingDown, "usage ledger: closed"))
            case true?: wake.signal()
            case false?: break
            }
        }
    }

    /// The writer thread: takes everything waiting, commits it, resumes the callers; sleeps when nothing waits.
    private func run() {
        // The two lists swap roles each round, so neither is reallocated under load.
        var batch: [Waiter] = []
        var records: [UsageRecord] = []
        var arrivals = ArrivalRate(window: Self.gatherWindow)
        while true {
            let stop: Bool = state.withLock { state in
                swap(&batch, &state.waiting)
                guard batch.isEmpty else { return false }
                if state.stopped { return true }
                state.writerAsleep = true
                return false
            }
            if stop { return }
            if batch.isEmpty {
                wake.wait()
                if arrivals.expectsAnother(now: .now) {
                    var pause = timespec(tv_sec: 0, tv_nsec: Int(Self.gatherWindow.microseconds * 1000))
                    var left = timespec()
                    while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
                }
                continue
            }
            arrivals.took(batch.count, at: .now)
            records.removeAll(keepingCapacity: true)
            for waiter in batch { records.append(waiter.record) }
            let results = write(records)
            for (waiter, result) in zip(batch, results) { waiter.continuation.resume(with: result) }
            batch.removeAll(keepingCapacity: true)
        }
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
                    guard Self.bind(record, seq: seq + 1, to: handle) else {
                        // Never insert a row with another record's values left bound.
                        throw VergeError(
                            .internalError,
                            "usage ledger: cannot bind record '\(record.invocationID)': "
                                + String(cString: sqlite3_errmsg(db.sqliteConnection)))
                    }
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

    /// Binds `seq` and the record's ``UsageRecord/columnList`` values to ``insertSQL``'s parameters; false if SQLite
    /// refused a value.
    private static func bind(_ record: UsageRecord, seq: Int64, to handle: SQLiteStatement) -> Bool {
        // Binding needs a statement that is not mid-execution: the previous record's step left it done, not reset.
        sqlite3_reset(handle)
        guard sqlite3_bind_int64(handle, 1, seq) == SQLITE_OK else { return false }
        return record.bind(to: handle, after: 1) == SQLITE_OK
    }
}

/// The rate at which records reach the writer, smoothed over the last few transactions, and whether another record is
/// due within the gathering window.
package struct ArrivalRate {
    /// The gathering window the rate is compared with.
    package let window: Duration
    private var lastTake: ContinuousClock.Instant?
    /// Records per second, exponentially weighted.
    package private(set) var perSecond: Double = 0

    package init(window: Duration) {
        self.window = window
    }

    /// Ten windows without records: the rate from before such a pause says nothing about now.
    private var pause: Duration { window * 10 }

    /// Notes that the writer took `count` records at `now`. After a pause the rate starts over from this take
    /// instead of blending it in.
    package mutating func took(_ count: Int, at now: ContinuousClock.Instant) {
        defer { lastTake = now }
        guard let lastTake else { return }
        let gap = now - lastTake
        let rate = Double(count) / max(gap.seconds, 1e-6)
        perSecond = gap >= pause ? rate : 0.75 * perSecond + 0.25 * rate
    }

    /// Whether at least one more record is expected within the window at the current rate; never after a pause.
    package func expectsAnother(now: ContinuousClock.Instant) -> Bool {
        guard let lastTake, now - lastTake < pause else { return false }
        return perSecond * window.seconds >= 1
    }
}
