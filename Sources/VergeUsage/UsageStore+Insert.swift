import GRDB
import GRDBSQLite
import VergeCore

extension UsageStore {
    /// Inserts `records` in `db`'s open transaction, skipping those whose host and invocation id are already stored,
    /// and returns how many it inserted.
    ///
    /// Multi-row statements of ``UsageRecord/maximumRowsPerInsert`` records (one per `AUTOINCREMENT` update and
    /// statement start), prepared once per call, with the values bound straight through SQLite's C interface: GRDB's
    /// `StatementArguments` box every value (`DatabaseValue`) and cost several times what SQLite spends on a row.
    static func insertIgnoringDuplicates(_ records: [UsageRecord], in db: Database) throws -> Int {
        let connection = db.sqliteConnection
        var prepared: [Int: OpaquePointer] = [:]
        defer { for statement in prepared.values { sqlite3_finalize(statement) } }
        func statement(rows: Int) throws -> OpaquePointer {
            if let statement = prepared[rows] { return statement }
            let sql = UsageRecord.insertIgnoringDuplicatesSQL(rows: rows)
            var handle: OpaquePointer?
            let code = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
            guard code == SQLITE_OK, let handle else {
                throw DatabaseError(
                    resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(connection)),
                    sql: sql)
            }
            prepared[rows] = handle
            return handle
        }
        var inserted = 0
        var start = records.startIndex
        while start < records.endIndex {
            let end = min(start + UsageRecord.maximumRowsPerInsert, records.endIndex)
            let insert = try statement(rows: end - start)
            var code = SQLITE_OK
            for (row, index) in (start..<end).enumerated() where code == SQLITE_OK {
                code = records[index].bind(to: insert, after: Int32(row * UsageRecord.columnCount))
            }
            if code == SQLITE_OK { code = sqlite3_step(insert) }
            guard code == SQLITE_DONE else {
                let message = String(cString: sqlite3_errmsg(connection))
                sqlite3_reset(insert)
                throw DatabaseError(
                    resultCode: ResultCode(rawValue: code), message: message,
                    sql: String(cString: sqlite3_sql(insert)))
            }
            inserted += Int(sqlite3_changes(connection))
            sqlite3_reset(insert)
            start = end
        }
        return inserted
    }
}
