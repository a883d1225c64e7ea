import GRDB
import VergeCore

/// How a ``UsageRecord`` is stored: one row of a `usage_records` table, both on hosts and in the control plane.
///
/// Column names are the record's JSON keys; `status` is stored as its text value, `cold_start` as 0 or 1.
/// Tables are made with `seq INTEGER PRIMARY KEY AUTOINCREMENT`: a sequence number is never reused, even after the
/// rows with the highest numbers were deleted, so a cursor never points past a new record. The host's table drops
/// AUTOINCREMENT in migration `host-ledger.v5-plain-seq` and keeps that promise by numbering records itself
/// (``HostLedger``).
extension UsageRecord {
    /// The record columns in the order ``init(row:startingAt:)`` and ``appendDatabaseValues(to:)`` use.
    static let columnList = v2ColumnList + ", " + billingColumnList

    /// The columns of the table as ``createTable(_:table:uniquePerHost:indexes:)`` makes it (the shape of
    /// migration 2). Frozen: migrations that copy tables of that shape use it.
    static let v2ColumnList =
        "invocation_id, tenant, function, version, host, start_time_us, duration_us, queue_us, cold_start, init_us, "
        + "status, http_status, request_bytes, response_bytes, limit_name"

    /// The columns ``addBillingColumns(_:)`` adds.
    static let billingColumnList =
        "version_number, region, billed_ms, cpu_us, memory_peak_bytes, memory_mb, memory_mb_ms, reason"

    /// `?` placeholders for ``columnList``.
    static let placeholders = Array(repeating: "?", count: columnCount).joined(separator: ", ")

    /// Creates the `usage_records` table (or `table`) with its indexes, in its current shape (tables made before
    /// `limit_name` existed get it from ``addLimitColumn(_:)`` in a later migration). Records are unique by
    /// invocation id, or, with `uniquePerHost`, by host and invocation id.
    static func createTable(
        _ db: Database, table: String = "usage_records", uniquePerHost: Bool = false, indexes: [String]
    ) throws {
        let uniqueness = uniquePerHost ? "invocation_id TEXT NOT NULL," : "invocation_id TEXT NOT NULL UNIQUE,"
        try db.execute(
            sql: """
                CREATE TABLE \(table) (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    \(uniqueness)
                    tenant TEXT NOT NULL,
                    function TEXT NOT NULL,
                    version TEXT NOT NULL,
                    host TEXT NOT NULL,
                    start_time_us INTEGER NOT NULL,
                    duration_us INTEGER NOT NULL,
                    queue_us INTEGER NOT NULL,
                    cold_start INTEGER NOT NULL CHECK (cold_start IN (0, 1)),
                    init_us INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    http_status INTEGER NOT NULL,
                    request_bytes INTEGER NOT NULL,
                    response_bytes INTEGER NOT NULL,
                    limit_name TEXT\(uniquePerHost ? ",\n    UNIQUE (host, invocation_id)" : "")
                )
                """
        )
        for columns in indexes {
            let name = "usage_records_" + columns.replacingOccurrences(of: ", ", with: "_")
            try db.execute(sql: "CREATE INDEX \(name) ON usage_records(\(columns))")
        }
    }

    /// Adds the billing columns (version number, region, billed duration, CPU, peak memory, configured memory,
    /// MiB·ms and the rejection reason) to a table made before they existed. Old rows keep zero values, except
    /// `billed_ms` and `memory_mb_ms`, which are derived from the wall duration (configured memory is unknown for
    /// them, so `memory_mb_ms` stays 0).
    static func addBillingColumns(_ db: Database, table: String = "usage_records") throws {
        let columns = Set(try db.columns(in: table).map(\.name))
        let added: [(String, String)] = [
            ("version_number", "INTEGER NOT NULL DEFAULT 0"),
            ("region", "TEXT NOT NULL DEFAULT ''"),
            ("billed_ms", "INTEGER NOT NULL DEFAULT 0"),
            ("cpu_us", "INTEGER NOT NULL DEFAULT 0"),
            ("memory_peak_bytes", "INTEGER NOT NULL DEFAULT 0"),
            ("memory_mb", "INTEGER NOT NULL DEFAULT 0"),
            ("memory_mb_ms", "INTEGER NOT NULL DEFAULT 0"),
            ("reason", "TEXT"),
        ]
        for (name, type) in added where !columns.contains(name) {
            try db.execute(sql: "ALTER TABLE \(table) ADD COLUMN \(name) \(type)")
        }
        try db.execute(
            sql: "UPDATE \(table) SET billed_ms = (duration_us + 999) / 1000 WHERE billed_ms = 0 AND duration_us > 0")
    }

    /// Adds `limit_name` (which limit ended a `limit_exceeded` call) to a table made before it existed.
    static func addLimitColumn(_ db: Database) throws {
        let columns = try db.columns(in: "usage_records").map(\.name)
        if !columns.contains("limit_name") {
            try db.execute(sql: "ALTER TABLE usage_records ADD COLUMN limit_name TEXT")
        }
    }

    /// The statement that inserts `rows` records (1...``maximumRowsPerInsert``), skipping those whose invocation id
    /// is already stored; `db.changesCount` tells how many were inserted. Arguments: ``appendDatabaseValues(to:)``
    /// of each record, in order.
    static func insertIgnoringDuplicatesSQL(rows: Int) -> String {
        insertIgnoringDuplicatesSQL[rows]
    }

    /// Records per multi-row INSERT: enough to amortise the per-statement cost, far below SQLite's variable limit.
    static let maximumRowsPerInsert = 64

    private static let insertIgnoringDuplicatesSQL: [String] = (0...maximumRowsPerInsert).map { rows in
        "INSERT INTO usage_records (\(columnList)) VALUES "
            + Array(repeating: "(\(placeholders))", count: rows).joined(separator: ", ")
            + " ON CONFLICT DO NOTHING"
    }

    /// Appends the values for ``columnList``, in order.
    func appendDatabaseValues(to values: inout [DatabaseValue]) {
        values.append(invocationID.databaseValue)
        values.append(tenant.databaseValue)
        values.append(function.databaseValue)
        values.append(version.databaseValue)
        values.append(host.databaseValue)
        values.append(startTimeUs.databaseValue)
        values.append(durationUs.databaseValue)
        values.append(queueUs.databaseValue)
        values.append(coldStart.databaseValue)
        values.append(initUs.databaseValue)
        values.append(status.rawValue.databaseValue)
        values.append(httpStatus.databaseValue)
        values.append(requestBytes.databaseValue)
        values.append(responseBytes.databaseValue)
        values.append(limit.databaseValue)
        values.append(versionNumber.databaseValue)
        values.append(region.databaseValue)
        values.append(billedMs.databaseValue)
        values.append(cpuUs.databaseValue)
        values.append(memoryPeakBytes.databaseValue)
        values.append(memoryMB.databaseValue)
        values.append(memoryMBMs.databaseValue)
        values.append(reason.databaseValue)
    }

    /// Number of values ``appendDatabaseValues(to:)`` appends.
    static let columnCount = 23

    /// Reads a record from `row`, whose columns from `start` on are ``columnList``.
    init(row: Row, startingAt start: Int = 0) throws {
        let statusText: String = row[start + 10]
        guard let status = InvocationStatus(rawValue: statusText) else {
            throw VergeError(.internalError, "usage record has an unknown status '\(statusText)'")
        }
        self.init(
            invocationID: row[start],
            tenant: row[start + 1],
            function: row[start + 2],
            version: row[start + 3],
            host: row[start + 4],
            startTimeUs: row[start + 5],
            durationUs: row[start + 6],
            queueUs: row[start + 7],
            coldStart: row[start + 8],
            initUs: row[start + 9],
            status: status,
            httpStatus: row[start + 11],
            requestBytes: row[start + 12],
            responseBytes: row[start + 13],
            limit: row[start + 14],
            reason: row[start + 22]
        )
        // billed_ms (start + 17) and memory_mb_ms (start + 21) are derived from the fields read here.
        versionNumber = row[start + 15]
        region = row[start + 16]
        cpuUs = row[start + 18]
        memoryPeakBytes = row[start + 19]
        memoryMB = row[start + 20]
    }
}
