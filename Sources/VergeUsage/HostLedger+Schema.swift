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
        return migrator
    }
}
