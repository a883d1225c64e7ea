import GRDB
import VergeCore

/// The control plane's usage store: every record shipped by every host, in the control plane's database.
///
/// ## Guarantees
/// - **Idempotent ingestion.** Records are keyed by host and invocation id (`INSERT … ON CONFLICT DO NOTHING`):
///   a host that re-ships a batch, after a timeout or a restart of either side, never doubles a record. The first
///   copy wins; later copies are counted as duplicates and otherwise ignored. A batch is one transaction. Since the
///   control plane only accepts a host's own records (by its credential), no host can claim another host's
///   invocation id first and so displace that host's real record.
/// - **Stable export order.** Each new record gets the store's own cursor, `seq INTEGER PRIMARY KEY AUTOINCREMENT`,
///   assigned at ingestion. SQLite has one writer at a time and `seq` is assigned inside the writing transaction, so
///   cursors become visible in increasing order: once a reader sees cursor N, every record with a lower cursor is
///   already committed. AUTOINCREMENT never reuses a cursor. Paging with ``page(after:limit:tenant:function:)``
///   therefore never skips or repeats a record while ingestion continues.
public final class UsageStore: Sendable {
    /// The longest page ``page(after:limit:tenant:function:)`` returns.
    public static let maximumPageSize = 10_000

    private let database: any DatabaseWriter

    /// Uses an existing GRDB writer (the control plane's `DatabasePool`). Call ``registerMigrations(_:)`` on the
    /// control plane's migrator before migrating it.
    public init(database: any DatabaseWriter) {
        self.database = database
    }

    /// A store of its own in a new SQLite database at `path`, configured as the control plane's (WAL,
    /// `synchronous = NORMAL`) — for benchmarks and tools.
    public static func standalone(path: String) throws -> UsageStore {
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        let pool = try DatabasePool(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        registerMigrations(&migrator)
        try migrator.migrate(pool)
        return UsageStore(database: pool)
    }

    /// Registers the store's tables with the control plane's migrator. Append-only: never edit a registered
    /// migration.
    public static func registerMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("usage.v1") { db in
            try UsageRecord.createTable(db, indexes: ["tenant, seq", "tenant, function, seq"])
        }
        migrator.registerMigration("usage.v2-limit") { db in
            try UsageRecord.addLimitColumn(db)
        }
        // Invocation ids are unique per host, not globally: rebuild the table with that key, keeping every record's
        // cursor and the cursor sequence.
        migrator.registerMigration("usage.v2-unique-per-host") { db in
            let sequence = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'usage_records'")
            try UsageRecord.createTable(db, table: "usage_records_v2", uniquePerHost: true, indexes: [])
            try db.execute(
                sql: """
                    INSERT INTO usage_records_v2 (seq, \(UsageRecord.v2ColumnList))
                    SELECT seq, \(UsageRecord.v2ColumnList) FROM usage_records ORDER BY seq
                    """)
            try db.execute(sql: "DROP TABLE usage_records")
            try db.execute(sql: "ALTER TABLE usage_records_v2 RENAME TO usage_records")
            for columns in ["tenant, seq", "tenant, function, seq"] {
                let name = "usage_records_" + columns.replacingOccurrences(of: ", ", with: "_")
                try db.execute(sql: "CREATE INDEX \(name) ON usage_records(\(columns))")
            }
            if let sequence {
                try db.execute(
                    sql: "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'usage_records'",
                    arguments: [sequence])
                if db.changesCount == 0 {
                    try db.execute(
                        sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('usage_records', ?)",
                        arguments: [sequence])
                }
            }
        }
        migrator.registerMigration("usage.v3-billing") { db in
            try UsageRecord.addBillingColumns(db)
            // The summary groups by time within a tenant.
            try db.execute(sql: "CREATE INDEX usage_records_tenant_start ON usage_records(tenant, start_time_us)")
            try db.execute(sql: "CREATE INDEX usage_records_start ON usage_records(start_time_us)")
        }
        // Every index costs each ingested record an insertion. (tenant, function, seq) cost the most of the four
        // (about a microsecond a record of the 8 the control plane spends): paging filtered by function now reads
        // the tenant's records in cursor order through (tenant, seq) and skips the other functions' records.
        migrator.registerMigration("usage.v4-ingest-indexes") { db in
            try db.execute(sql: "DROP INDEX IF EXISTS usage_records_tenant_function_seq")
        }
    }

    /// Stores the records not already stored, in one transaction. Returns how many were new and how many were
    /// already there (including repeats within `records`).
    public func ingest(_ records: [UsageRecord]) async throws -> IngestResult {
        guard !records.isEmpty else { return IngestResult(inserted: 0, duplicates: 0) }
        for (index, record) in records.enumerated() {
            if let problem = record.validationProblem() {
                throw VergeError(.badRequest, "record \(index): \(problem)")
            }
        }
        return try await LedgerErrors.wrapping("ingesting usage records") {
            try await database.write { db in
                let inserted = try Self.insertIgnoringDuplicates(records, in: db)
                return IngestResult(inserted: inserted, duplicates: records.count - inserted)
            }
        }
    }

    /// Records with a cursor greater than `after`, in cursor order, at most `limit` (1...``maximumPageSize``).
    /// `tenant` nil means every tenant; `function` restricts to one function name.
    ///
    /// Start with `after: 0` and pass each page's ``UsagePage/nextCursor`` to the next call.
    public func page(after: Int64, limit: Int, tenant: String?, function: String?) async throws -> UsagePage {
        try LedgerErrors.checkLimit(limit, 1...Self.maximumPageSize)
        return try await LedgerErrors.wrapping("reading usage records") {
            try await database.read { db in
                var arguments: StatementArguments = [after]
                if let tenant { arguments += [tenant] }
                if let function { arguments += [function] }
                arguments += [limit]
                let rows = try Row.fetchCursor(
                    db, sql: Self.pageSQL(tenant: tenant != nil, function: function != nil), arguments: arguments)
                var records: [UsageRecord] = []
                var last = after
                while let row = try rows.next() {
                    last = row[0]
                    records.append(try UsageRecord(row: row, startingAt: 1))
                }
                return UsagePage(records: records, nextCursor: last)
            }
        }
    }

    /// The query of ``page(after:limit:tenant:function:)``; arguments: the cursor, the tenant and the function when
    /// filtered by them, the limit.
    package static func pageSQL(tenant: Bool, function: Bool) -> String {
        var filter = "seq > ?"
        if tenant { filter += " AND tenant = ?" }
        if function { filter += " AND function = ?" }
        return "SELECT seq, \(UsageRecord.columnList) FROM usage_records WHERE \(filter) ORDER BY seq LIMIT ?"
    }

    /// The most rows ``summary(_:)`` returns; a query that would return more is refused (narrow the range or the
    /// grouping).
    public static let maximumSummaryRows = 100_000

    /// Sums of the records that started in `[fromUs, toUs)`, one row per group, ordered by the group keys. The sums
    /// are exact integers computed by the database from the same columns the export returns, so a summary equals
    /// the sum of the records it covers.
    public func summary(_ query: UsageSummaryQuery) async throws -> UsageSummary {
        guard query.fromUs < query.toUs else {
            throw VergeError(.badRequest, "from must be before to")
        }
        let hourUs: Int64 = 3_600_000_000
        let expressions: [(UsageSummaryQuery.Key, String)] = query.groupBy.map { key in
            switch key {
            case .hour: (key, "(start_time_us / \(hourUs)) * \(hourUs)")
            case .day: (key, "(start_time_us / \(hourUs * 24)) * \(hourUs * 24)")
            default: (key, key.rawValue)
            }
        }
        // Grouped by status too, always: the rows carry their counts per status.
        let groupColumns = expressions.map(\.1) + (query.groupBy.contains(.status) ? [] : ["status"])
        let select =
            (groupColumns + [
                "COUNT(*)", "SUM(billed_ms)", "SUM(memory_mb_ms)", "SUM(cpu_us)", "SUM(init_us)", "SUM(response_bytes)",
                "SUM(request_bytes)",
            ]).joined(separator: ", ")
        var filter = "start_time_us >= ? AND start_time_us < ?"
        var queryArguments: StatementArguments = [query.fromUs, query.toUs]
        if let tenant = query.tenant {
            filter += " AND tenant = ?"
            queryArguments += [tenant]
        }
        let arguments = queryArguments
        let groupList = groupColumns.joined(separator: ", ")
        let sql = "SELECT \(select) FROM usage_records WHERE \(filter) GROUP BY \(groupList) ORDER BY \(groupList)"
        let keyCount = expressions.count
        let statusIndex = query.groupBy.firstIndex(of: .status) ?? keyCount
        let rows = try await LedgerErrors.wrapping("summarising usage records") {
            try await database.read { db in
                var rows: [UsageSummaryRow] = []
                var lastKey: [DatabaseValue]?
                let cursor = try Row.fetchCursor(db, sql: sql, arguments: arguments)
                while let row = try cursor.next() {
                    let key = (0..<keyCount).map { row[$0] as DatabaseValue }
                    if key != lastKey {
                        guard rows.count < Self.maximumSummaryRows else {
                            throw VergeError(
                                .badRequest,
                                "the summary has more than \(Self.maximumSummaryRows) rows: narrow from/to or group_by")
                        }
                        var summary = UsageSummaryRow()
                        for (index, (name, _)) in expressions.enumerated() {
                            switch name {
                            case .tenant: summary.tenant = row[index]
                            case .function: summary.function = row[index]
                            case .host: summary.host = row[index]
                            case .region: summary.region = row[index]
                            case .status: summary.status = row[index]
                            case .hour: summary.hour = UsageSummary.rfc3339(microseconds: row[index])
                            case .day: summary.day = UsageSummary.rfc3339(microseconds: row[index])
                            }
                        }
                        rows.append(summary)
                        lastKey = key
                    }
                    let base = groupColumns.count
                    let status: String = row[statusIndex]
                    let count: Int64 = row[base]
                    rows[rows.count - 1].requests += count
                    rows[rows.count - 1].byStatus[status, default: 0] += count
                    rows[rows.count - 1].billedMs += row[base + 1]
                    rows[rows.count - 1].memoryMBMs += row[base + 2]
                    rows[rows.count - 1].cpuUs += row[base + 3]
                    rows[rows.count - 1].initUs += row[base + 4]
                    rows[rows.count - 1].egressBytes += row[base + 5]
                    rows[rows.count - 1].ingressBytes += row[base + 6]
                }
                for index in rows.indices { rows[index].updateDerived() }
                return rows
            }
        }
        return UsageSummary(
            from: UsageSummary.rfc3339(microseconds: query.fromUs), to: UsageSummary.rfc3339(microseconds: query.toUs),
            groupBy: query.groupBy, rows: rows)
    }

    /// How many records are stored, for one tenant or (nil) for all.
    public func count(tenant: String?) async throws -> Int {
        try await LedgerErrors.wrapping("counting usage records") {
            try await database.read { db in
                if let tenant {
                    return try Int.fetchOne(
                        db,
                        sql: "SELECT COUNT(*) FROM usage_records WHERE tenant = ?",
                        arguments: [tenant]
                    ) ?? 0
                }
                return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM usage_records") ?? 0
            }
        }
    }
}
