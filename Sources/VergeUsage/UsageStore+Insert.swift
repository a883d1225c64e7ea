import GRDB
import GRDBSQLite
import VergeCore

extension UsageStore {
    /// Inserts `records` in `db`'s open transaction, skipping those whose host and invocation id are already stored,
    /// and returns how many it inserted.
    ///
    /// One statement, prepared once per call and stepped once per record, with the values bound straight through
    /// SQLite's C interface: GRDB's `StatementArguments` box every value (`DatabaseValue`) and cost several times
    /// what SQLite itself spends on a row. The statement is the one ``UsageRecord/insertIgnoringDuplicatesSQL(rows:)``
    /// makes for one row.
    static func insertIgnoringDuplicates(_ records: [UsageRecord], in db: Database) throws -> Int {
        let connection = db.sqliteConnection
        var handle: OpaquePointer?
        let sql = UsageRecord.insertIgnoringDuplicatesSQL(rows: 1)
        var code = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard code == SQLITE_OK, let statement = handle else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(connection)), sql: sql)
        }
        defer { sqlite3_finalize(statement) }
        var inserted = 0
        for record in records {
            code = bind(record, to: statement)
            if code == SQLITE_OK { code = sqlite3_step(statement) }
            guard code == SQLITE_DONE else {
                throw DatabaseError(
                    resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(connection)),
                    sql: sql)
            }
            inserted += Int(sqlite3_changes(connection))
            sqlite3_reset(statement)
        }
        return inserted
    }

    /// Binds `record`'s values in the order of ``UsageRecord/columnList``; the first error code, or `SQLITE_OK`.
    private static func bind(_ record: UsageRecord, to statement: OpaquePointer) -> Int32 {
        var index: Int32 = 0
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
        assert(index == Int32(UsageRecord.columnCount))
        return code
    }

    /// SQLite's "copy the value now" destructor.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }
}
