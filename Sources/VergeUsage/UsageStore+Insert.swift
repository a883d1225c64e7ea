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
                code = bind(records[index], to: insert, firstParameter: Int32(row * UsageRecord.columnCount))
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

    /// Binds `record`'s values in the order of ``UsageRecord/columnList`` to the parameters after `firstParameter`;
    /// returns the first error code, or `SQLITE_OK`.
    private static func bind(_ record: UsageRecord, to statement: OpaquePointer, firstParameter: Int32) -> Int32 {
        var index = firstParameter
        var code = SQLITE_OK
        func text(_ value: String?) {
            index += 1
            guard code == SQLITE_OK else { return }
            guard var value else {
                code = sqlite3_bind_null(statement, index)
                return
            }
            // Copied by SQLite (SQLITE_TRANSIENT): the bytes need not outlive this call.
            // SQLite binds NULL for a text without an address: an empty string gets a literal's.
            if value.isEmpty {
                code = sqlite3_bind_text(statement, index, "", 0, transient)
                return
            }
            code = value.withUTF8 { utf8 in
                utf8.withMemoryRebound(to: CChar.self) { chars in
                    sqlite3_bind_text(statement, index, chars.baseAddress, Int32(chars.count), transient)
                }
            }
        }
        func integer(_ value: Int64) {
            index += 1
            guard code == SQLITE_OK else { return }
            code = sqlite3_bind_int64(statement, index, value)
        }
        text(record.invocationID)
        text(record.tenant)
        text(record.function)
        text(record.version)
        text(record.host)
        integer(record.startTimeUs)
        integer(record.durationUs)
        integer(record.queueUs)
        integer(record.coldStart ? 1 : 0)
        integer(record.initUs)
        text(record.status.rawValue)
        integer(Int64(record.httpStatus))
        integer(record.requestBytes)
        integer(record.responseBytes)
        text(record.limit)
        integer(Int64(record.versionNumber))
        text(record.region)
        integer(record.billedMs)
        integer(record.cpuUs)
        integer(record.memoryPeakBytes)
        integer(Int64(record.memoryMB))
        integer(record.memoryMBMs)
        text(record.reason)
        assert(index == firstParameter + Int32(UsageRecord.columnCount))
        return code
    }

    /// SQLite's "copy the value now" destructor.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }
}
