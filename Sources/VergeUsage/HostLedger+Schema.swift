import GRDB
import VergeCore

extension HostLedger {
    /// The host database's schema. Migrations are append-only: never edit a registered one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("host-ledger.v1") { db in
            try UsageRecord.createTable(db, indexes: [])
            // One row: the highest `usage_records.seq` the control plane acknowledged.
            try db.execute(
                sql: """
                    CREATE TABLE shipping (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        shipped_through INTEGER NOT NULL
                    )
                    """
            )
            try db.execute(sql: "INSERT INTO shipping (id, shipped_through) VALUES (1, 0)")
            try db.execute(
                sql: """
                    CREATE TABLE function_logs (
                        id INTEGER PRIMARY KEY,
                        time_us INTEGER NOT NULL,
                        tenant TEXT NOT NULL,
                        function TEXT NOT NULL,
                        version TEXT NOT NULL,
                        invocation_id TEXT,
                        stream TEXT NOT NULL,
                        line TEXT NOT NULL
                    )
                    """
            )
            try db.execute(sql: "CREATE INDEX function_logs_function ON function_logs(tenant, function, id)")
            try db.execute(
                sql: """
                    CREATE INDEX function_logs_invocation ON function_logs(invocation_id, id)
                    WHERE invocation_id IS NOT NULL
                    """
            )
            try db.execute(sql: "CREATE INDEX function_logs_time ON function_logs(time_us)")
        }
        migrator.registerMigration("host-ledger.v2-limit") { db in
            try UsageRecord.addLimitColumn(db)
        }
        migrator.registerMigration("host-ledger.v3-billing") { db in
            try UsageRecord.addBillingColumns(db)
        }
        // A one-row table the host writes to when it checks that its ledger can commit again.
        migrator.registerMigration("host-ledger.v4-probe") { db in
            try db.execute(
                sql: "CREATE TABLE ledger_probe (id INTEGER PRIMARY KEY CHECK (id = 1), time_us INTEGER NOT NULL)")
            try db.execute(sql: "INSERT INTO ledger_probe (id, time_us) VALUES (1, 0)")
        }
        // Sequence numbers without AUTOINCREMENT: the group committer assigns them inside its transaction from the
        // highest one in use (the newest record or the shipping cursor), which needs no `sqlite_sequence` row to
        // update on every transaction. The table is rebuilt with the same rows, numbers and cursor.
        migrator.registerMigration("host-ledger.v5-plain-seq") { db in
            try db.execute(
                sql: """
                    CREATE TABLE usage_records_v5 (
                        seq INTEGER PRIMARY KEY,
                        invocation_id TEXT NOT NULL UNIQUE,
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
                        limit_name TEXT,
                        version_number INTEGER NOT NULL DEFAULT 0,
                        region TEXT NOT NULL DEFAULT '',
                        billed_ms INTEGER NOT NULL DEFAULT 0,
                        cpu_us INTEGER NOT NULL DEFAULT 0,
                        memory_peak_bytes INTEGER NOT NULL DEFAULT 0,
                        memory_mb INTEGER NOT NULL DEFAULT 0,
                        memory_mb_ms INTEGER NOT NULL DEFAULT 0,
                        reason TEXT
                    )
                    """
            )
            try db.execute(
                sql: """
                    INSERT INTO usage_records_v5 (seq, \(UsageRecord.columnList))
                    SELECT seq, \(UsageRecord.columnList) FROM usage_records ORDER BY seq
                    """
            )
            try db.execute(sql: "DROP TABLE usage_records")
            try db.execute(sql: "ALTER TABLE usage_records_v5 RENAME TO usage_records")
        }
        return migrator
    }
}
