import GRDBSQLite
import VergeCore

extension UsageRecord {
    /// Binds the record's values, in the order of ``columnList``, to `statement`'s parameters after
    /// `firstParameter` (parameters are numbered from 1); returns the first error code, or `SQLITE_OK`. Straight
    /// through SQLite's C interface: the host's commit and the control plane's ingest bind every record they store.
    func bind(to statement: OpaquePointer, after firstParameter: Int32) -> Int32 {
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
                code = sqlite3_bind_text(statement, index, "", 0, Self.transient)
                return
            }
            code = value.withUTF8 { utf8 in
                utf8.withMemoryRebound(to: CChar.self) { chars in
                    sqlite3_bind_text(statement, index, chars.baseAddress, Int32(chars.count), Self.transient)
                }
            }
        }
        func integer(_ value: Int64) {
            index += 1
            guard code == SQLITE_OK else { return }
            code = sqlite3_bind_int64(statement, index, value)
        }
        text(invocationID)
        text(tenant)
        text(function)
        text(version)
        text(host)
        integer(startTimeUs)
        integer(durationUs)
        integer(queueUs)
        integer(coldStart ? 1 : 0)
        integer(initUs)
        text(status.rawValue)
        integer(Int64(httpStatus))
        integer(requestBytes)
        integer(responseBytes)
        text(limit)
        integer(Int64(versionNumber))
        text(region)
        integer(billedMs)
        integer(cpuUs)
        integer(memoryPeakBytes)
        integer(Int64(memoryMB))
        integer(memoryMBMs)
        text(reason)
        assert(code != SQLITE_OK || index == firstParameter + Int32(UsageRecord.columnCount))
        return code
    }

    /// SQLite's "copy the value now" destructor.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }
}
