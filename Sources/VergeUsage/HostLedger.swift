import Foundation
import GRDB
import VergeCore

/// The host's own database: usage records awaiting shipping, the shipping cursor, and function logs.
///
/// ## Durability
/// The database is in WAL mode with `synchronous = NORMAL`. ``record(_:)`` returns once the record's transaction is
/// committed, that is, written to the write-ahead log through the operating system. From then on:
/// - a crash or `kill -9` of this process never loses the record: the write is in the kernel, which completes it;
/// - an operating-system crash or a power loss can lose the transactions committed since the last checkpoint
///   (WAL frames are fsynced at checkpoints, not at each commit), but never corrupts the database.
/// This is the usual trade: `synchronous = FULL` would fsync every commit and cost a disk flush per call, for
/// protection against power loss only.
///
/// Concurrent ``record(_:)`` calls share transactions (group commit), so a busy host pays for far fewer commits than
/// it serves calls.
///
/// ## Shipping
/// Every record gets a local sequence number (`seq`), increasing in commit order and never reused, even after
/// ``prune(olderThan:now:)`` deleted the newest rows. The shipper reads ``unshipped(limit:)``, sends the records to the
/// control plane (whose ingestion is idempotent, see ``UsageStore``), then calls ``markShipped(through:)``. A crash
/// between the two only resends records, which the control plane counts once.
public final class HostLedger: Sendable {
    /// The longest page ``unshipped(limit:)`` and ``logs(tenant:function:invocationID:limit:)`` return.
    public static let maximumLimit = 10_000

    let database: DatabasePool
    private let committer: GroupCommitter

    /// Opens the ledger at `path`, creating the directory and the database if needed and bringing the schema up to
    /// date.
    public init(path: String) throws {
        do {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

            var configuration = Configuration()
            configuration.label = "verge.host-ledger"
            // Another process (`verge usage --host`) may read or briefly write while the host runs.
            configuration.busyMode = .timeout(10)
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            // DatabasePool puts the database in WAL mode.
            let database = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(database)
            self.database = database
            self.committer = GroupCommitter(database: database)
        } catch let error as VergeError {
            throw error
        } catch {
            throw VergeError(.internalError, "cannot open the usage ledger", underlying: error)
        }
    }

    deinit {
        committer.stop()
    }

    /// Commits the record; returns once it is durable in the WAL (see the type's discussion).
    ///
    /// Throws `VergeError(.badRequest)` if a record with the same invocation id is already kept; the kept record is
    /// unchanged. Cancelling the caller does not abandon the write.
    public func record(_ record: UsageRecord) async throws {
        try await committer.commit(record)
    }

    /// Checks that the ledger can commit: writes one small transaction, as durable as a record's. Throws the
    /// database's error (disk full, read-only, I/O error) wrapped in a `VergeError`.
    public func probe() async throws {
        try await LedgerErrors.wrapping("probing") {
            try await database.write { db in
                try db.execute(
                    sql: "UPDATE ledger_probe SET time_us = ? WHERE id = 1", arguments: [WallClock.microseconds()])
            }
        }
    }

    /// How many records wait for the control plane's acknowledgement.
    public func unshippedCount() async throws -> Int {
        try await LedgerErrors.wrapping("counting unshipped records") {
            try await database.read { db in
                try Int.fetchOne(
                    db,
                    sql: "SELECT COUNT(*) FROM usage_records WHERE seq > (SELECT shipped_through FROM shipping WHERE id = 1)"
                ) ?? 0
            }
        }
    }

    /// The oldest records the control plane has not acknowledged, `seq` first, at most `?` of them.
    static let unshippedSQL = """
        SELECT seq, \(UsageRecord.columnList) FROM usage_records
        WHERE seq > (SELECT shipped_through FROM shipping WHERE id = 1)
        ORDER BY seq LIMIT ?
        """

    /// Records not yet acknowledged by the control plane, oldest first, with their local sequence numbers; at most
    /// `limit` (1...``maximumLimit``).
    public func unshipped(limit: Int) async throws -> [ShippableRecord] {
        try LedgerErrors.checkLimit(limit, 1...Self.maximumLimit)
        return try await LedgerErrors.wrapping("reading unshipped records") {
            try await database.read { db in
                let rows = try Row.fetchCursor(db, sql: Self.unshippedSQL, arguments: [limit])
                var result: [ShippableRecord] = []
                while let row = try rows.next() {
                    result.append(ShippableRecord(seq: row[0], record: try UsageRecord(row: row, startingAt: 1)))
                }
                return result
            }
        }
    }

    /// Marks every record with `seq` ≤ `seq` as shipped.
    ///
    /// Monotonic: a value lower than the current cursor is ignored. A value beyond the highest sequence number ever
    /// assigned is clamped to it, so a record committed later can never be taken for shipped.
    public func markShipped(through seq: Int64) async throws {
        try await LedgerErrors.wrapping("marking records shipped") {
            try await database.write { db in
                try db.execute(
                    sql: """
                        UPDATE shipping SET shipped_through = MAX(
                            shipped_through,
                            MIN(?, COALESCE((SELECT MAX(seq) FROM usage_records), 0))
                        ) WHERE id = 1
                        """,
                    arguments: [seq]
                )
            }
        }
    }

    /// The highest sequence number acknowledged by the control plane; 0 before the first acknowledgement.
    public func shippedCursor() async throws -> Int64 {
        try await LedgerErrors.wrapping("reading the shipping cursor") {
            try await database.read { db in
                try Int64.fetchOne(db, sql: "SELECT shipped_through FROM shipping WHERE id = 1") ?? 0
            }
        }
    }

    /// All records kept on this host, shipped or not, oldest first — for tests and `verge usage --host`.
    public func allRecords() async throws -> [UsageRecord] {
        try await LedgerErrors.wrapping("reading records") {
            try await database.read { db in
                let rows = try Row.fetchCursor(
                    db,
                    sql: "SELECT \(UsageRecord.columnList) FROM usage_records ORDER BY seq"
                )
                var result: [UsageRecord] = []
                while let row = try rows.next() { result.append(try UsageRecord(row: row)) }
                return result
            }
        }
    }

    /// Appends worker output lines, in order, in one transaction. Logs have the same durability as records but are
    /// never shipped; they live until ``prune(olderThan:now:)``.
    public func appendLogs(_ lines: [LogLine]) async throws {
        guard !lines.isEmpty else { return }
        try await LedgerErrors.wrapping("appending logs") {
            try await database.write { db in
                let statement = try db.cachedStatement(
                    sql: """
                        INSERT INTO function_logs (time_us, tenant, function, version, invocation_id, stream, line)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """
                )
                for line in lines {
                    try statement.execute(arguments: [
                        line.timeUs, line.tenant, line.function, line.version, line.invocationID, line.stream,
                        line.line,
                    ])
                }
            }
        }
    }

    /// The newest `limit` (1...``maximumLimit``) log lines of a function, or of one of its invocations when
    /// `invocationID` is given; returned oldest first (newest last), in the order they were appended.
    public func logs(tenant: String, function: String, invocationID: String?, limit: Int) async throws -> [LogLine] {
        try LedgerErrors.checkLimit(limit, 1...Self.maximumLimit)
        return try await LedgerErrors.wrapping("reading logs") {
            try await database.read { db in
                var filter = "tenant = ? AND function = ?"
                var arguments: StatementArguments = [tenant, function]
                if let invocationID {
                    filter += " AND invocation_id = ?"
                    arguments += [invocationID]
                }
                arguments += [limit]
                let rows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT time_us, tenant, function, version, invocation_id, stream, line FROM (
                            SELECT id, time_us, tenant, function, version, invocation_id, stream, line
                            FROM function_logs WHERE \(filter) ORDER BY id DESC LIMIT ?
                        ) ORDER BY id
                        """,
                    arguments: arguments
                )
                var result: [LogLine] = []
                while let row = try rows.next() {
                    result.append(
                        LogLine(
                            timeUs: row[0], tenant: row[1], function: row[2], version: row[3], invocationID: row[4],
                            stream: row[5], line: row[6]
                        )
                    )
                }
                return result
            }
        }
    }

    /// Retention: deletes records that are both shipped and started before `now - age`, and log lines written
    /// before `now - age`. Unshipped records are never deleted, however old.
    public func prune(olderThan age: Duration, now: Date) async throws {
        guard age >= .zero else {
            throw VergeError(.badRequest, "retention age must not be negative, got \(age)")
        }
        let cutoff = Self.microseconds(since1970: now) - Self.microseconds(age)
        try await LedgerErrors.wrapping("pruning") {
            try await database.write { db in
                try db.execute(
                    sql: """
                        DELETE FROM usage_records
                        WHERE seq <= (SELECT shipped_through FROM shipping WHERE id = 1) AND start_time_us < ?
                        """,
                    arguments: [cutoff]
                )
                try db.execute(sql: "DELETE FROM function_logs WHERE time_us < ?", arguments: [cutoff])
            }
        }
    }

    static func microseconds(since1970 date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
    }

    static func microseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        return overflow ? .max : product.addingReportingOverflow(attoseconds / 1_000_000_000_000).partialValue
    }
}
