/// Decodes a ``UsageBatch`` from the shipping format — the JSON a host sends to `POST /v1/internal/usage` — in one
/// strict pass over the bytes, for the control plane's ingest path (about a sixth of the CPU time of Foundation's
/// `JSONDecoder`, which builds a tree of every value before decoding it).
///
/// It reads exactly the batch's shape and refuses everything else with a `bad_request` ``VergeError`` naming the
/// place (`records.3.duration_us: …`):
/// - the batch is an object with `host` (a string) and `records` (an array of record objects), each exactly once;
/// - a record's keys are the JSON keys of ``UsageRecord`` (`billed_ms` and `gb_seconds`, derived, are read and
///   ignored, as ``UsageRecord/init(from:)`` does); an unknown or repeated key is refused, a missing required key
///   too; the fields hosts of earlier versions did not send take their zero values when absent or `null`;
/// - integers are JSON integers (no fraction or exponent) within `Int64`; strings are JSON strings with their
///   escapes, valid UTF-8 and no raw control characters (lone surrogate escapes are refused);
/// - nothing may follow the batch but whitespace.
/// What it accepts `JSONDecoder` decodes to the same batch (tested on generated and mutated input); it refuses
/// some inputs `JSONDecoder` would take (unknown or repeated keys, `1.0` for an integer). It checks only the shape:
/// ``UsageRecord/validationProblem()`` still checks every value.
public enum UsageBatchDecoder {
    /// Decodes a batch from `bytes`.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(VergeError) -> UsageBatch {
        var parser = Parser(bytes)
        do {
            return try parser.batch()
        } catch {
            throw VergeError(
                .badRequest, "invalid usage batch: \(parser.path)\(error.message) (at byte \(parser.offset))")
        }
    }

    /// Decodes a batch from `bytes`.
    public static func decode(_ bytes: [UInt8]) throws(VergeError) -> UsageBatch {
        let result: Result<UsageBatch, VergeError> = bytes.withUnsafeBytes { buffer in
            do throws(VergeError) { return .success(try decode(buffer)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

/// Whether `a` and `b` hold the same bytes.
private func equalBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    for index in 0..<a.count where a[index] != b[index] { return false }
    return true
}

/// What is wrong at the parser's position.
private struct ShapeError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The keys of a record in the shipping format.
private enum RecordKey: Int, CaseIterable {
    case invocationID, tenant, function, version, versionNumber, host, region, startTimeUs, durationUs, billedMs
    case queueUs, coldStart, initUs, cpuUs, memoryPeakBytes, memoryMB, gbSeconds, status, httpStatus
    case requestBytes, responseBytes, limit, reason

    var name: String {
        switch self {
        case .invocationID: "invocation_id"
        case .tenant: "tenant"
        case .function: "function"
        case .version: "version"
        case .versionNumber: "version_number"
        case .host: "host"
        case .region: "region"
        case .startTimeUs: "start_time_us"
        case .durationUs: "duration_us"
        case .billedMs: "billed_ms"
        case .queueUs: "queue_us"
        case .coldStart: "cold_start"
        case .initUs: "init_us"
        case .cpuUs: "cpu_us"
        case .memoryPeakBytes: "memory_peak_bytes"
        case .memoryMB: "memory_mb"
        case .gbSeconds: "gb_seconds"
        case .status: "status"
        case .httpStatus: "http_status"
        case .requestBytes: "request_bytes"
        case .responseBytes: "response_bytes"
        case .limit: "limit"
        case .reason: "reason"
        }
    }

    /// Every key's UTF-8 bytes, by raw value.
    static let names: [[UInt8]] = allCases.map { Array($0.name.utf8) }

    /// The keys a record must have (those hosts have always sent).
    static let required: UInt32 = [
        invocationID, tenant, function, version, host, startTimeUs, durationUs, queueUs, coldStart, initUs, status,
        httpStatus, requestBytes, responseBytes,
    ].reduce(0) { $0 | $1.bit }

    var bit: UInt32 { 1 << UInt32(rawValue) }

    /// The keys in the order hosts send them (sorted, as `JSONCoding.encoder` writes them).
    static let sorted: [RecordKey] = allCases.sorted { $0.name < $1.name }

    /// The key that follows each key in ``sorted``, by raw value (the first key after the last).
    static let following: [RecordKey] = allCases.map { key in
        sorted[(sorted.firstIndex(of: key)! + 1) % sorted.count]
    }

    /// Whether this key's name is `bytes`.
    func isNamed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        Self.names[rawValue].withUnsafeBytes { equalBytes($0, bytes) }
    }

    /// The key whose name is `bytes`, trying `expected` first.
    static func find(_ bytes: UnsafeRawBufferPointer, expected: RecordKey) -> RecordKey? {
        if expected.isNamed(bytes) { return expected }
        for key in allCases where key.isNamed(bytes) { return key }
        return nil
    }
}

/// The values of one record as they are read.
private struct RecordFields {
    var invocationID = "", tenant = "", function = "", version = "", host = "", region = ""
    var versionNumber: Int64 = 0, startTimeUs: Int64 = 0, durationUs: Int64 = 0, queueUs: Int64 = 0
    var initUs: Int64 = 0, cpuUs: Int64 = 0, memoryPeakBytes: Int64 = 0, memoryMB: Int64 = 0, httpStatus: Int64 = 0
    var requestBytes: Int64 = 0, responseBytes: Int64 = 0
    var coldStart = false
    var status = InvocationStatus.ok
    var limit: String?
    var reason: String?
}

private struct Parser {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    /// Where the parser is, for error messages: `records.3.tenant: `, or empty at the top.
    var recordIndex: Int?
    var key: String?

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var path: String {
        switch (recordIndex, key) {
        case (let index?, let key?): "records.\(index).\(key): "
        case (let index?, nil): "records.\(index): "
        case (nil, let key?): "\(key): "
        case (nil, nil): ""
        }
    }

    // MARK: The batch

    mutating func batch() throws(ShapeError) -> UsageBatch {
        try expect(UInt8(ascii: "{"), "the batch must be a JSON object")
        var host: String?
        var records: [UsageRecord]?
        if try !consume(UInt8(ascii: "}")) {
            repeat {
                let name = try keyBytes()
                if name.elementsEqual("host".utf8) {
                    guard host == nil else { throw ShapeError("the key 'host' appears twice") }
                    key = "host"
                    host = try string()
                } else if name.elementsEqual("records".utf8) {
                    guard records == nil else { throw ShapeError("the key 'records' appears twice") }
                    key = "records"
                    records = try recordArray()
                } else {
                    throw ShapeError(
                        "unknown key '\(String(decoding: name, as: UTF8.self))' (a batch has host and records)")
                }
                key = nil
            } while try nextMember()
        }
        guard let host else { throw ShapeError("missing key 'host'") }
        guard let records else { throw ShapeError("missing key 'records'") }
        skipWhitespace()
        guard offset == bytes.count else { throw ShapeError("unexpected data after the batch") }
        return UsageBatch(host: host, records: records)
    }

    mutating func recordArray() throws(ShapeError) -> [UsageRecord] {
        try expect(UInt8(ascii: "["), "expected an array of records")
        var records: [UsageRecord] = []
        // A record takes at least 300 bytes in the shipping format; reserving by that never over-allocates much.
        records.reserveCapacity(min((bytes.count - offset) / 300 + 1, 100_000))
        if try consume(UInt8(ascii: "]")) { return records }
        var previous: UsageRecord?
        repeat {
            recordIndex = records.count
            key = nil
            let record = try record(previous: previous)
            records.append(record)
            previous = record
            skipWhitespace()
            guard offset < bytes.count else { throw ShapeError("the array of records is not closed") }
            let byte = bytes[offset]
            offset += 1
            if byte == UInt8(ascii: "]") { break }
            guard byte == UInt8(ascii: ",") else {
                offset -= 1
                throw ShapeError("expected ',' or ']' after a record")
            }
        } while true
        recordIndex = nil
        return records
    }

    /// One record. Text fields equal to `previous`'s share its storage (a batch repeats tenants, functions,
    /// versions and its host).
    mutating func record(previous: UsageRecord?) throws(ShapeError) -> UsageRecord {
        try expect(UInt8(ascii: "{"), "a record must be a JSON object")
        var fields = RecordFields()
        var seen: UInt32 = 0
        var expected = RecordKey.sorted[0]
        if try !consume(UInt8(ascii: "}")) {
            repeat {
                let name = try keyBytes()
                guard let field = RecordKey.find(name, expected: expected) else {
                    key = nil
                    throw ShapeError("unknown key '\(String(decoding: name, as: UTF8.self))'")
                }
                key = field.name
                guard seen & field.bit == 0 else { throw ShapeError("the key appears twice") }
                seen |= field.bit
                expected = RecordKey.following[field.rawValue]
                try value(for: field, into: &fields, previous: previous)
                key = nil
            } while try nextMember()
        }
        let missing = RecordKey.required & ~seen
        if missing != 0 {
            let first = RecordKey(rawValue: missing.trailingZeroBitCount)!
            throw ShapeError("missing key '\(first.name)'")
        }
        var record = UsageRecord(
            invocationID: fields.invocationID, tenant: fields.tenant, function: fields.function,
            version: fields.version, host: fields.host, startTimeUs: fields.startTimeUs, durationUs: fields.durationUs,
            queueUs: fields.queueUs, coldStart: fields.coldStart, initUs: fields.initUs, status: fields.status,
            httpStatus: Int(fields.httpStatus), requestBytes: fields.requestBytes, responseBytes: fields.responseBytes,
            limit: fields.limit, reason: fields.reason)
        record.versionNumber = Int(fields.versionNumber)
        record.region = fields.region
        record.cpuUs = fields.cpuUs
        record.memoryPeakBytes = fields.memoryPeakBytes
        record.memoryMB = Int(fields.memoryMB)
        return record
    }

    mutating func value(
        for field: RecordKey, into fields: inout RecordFields, previous: UsageRecord?
    ) throws(ShapeError) {
        switch field {
        case .invocationID: fields.invocationID = try string()
        case .tenant: fields.tenant = try string(reusing: previous?.tenant)
        case .function: fields.function = try string(reusing: previous?.function)
        case .version: fields.version = try string(reusing: previous?.version)
        case .host: fields.host = try string(reusing: previous?.host)
        case .region: fields.region = try consumeNull() ? "" : try string(reusing: previous?.region)
        case .versionNumber: fields.versionNumber = try consumeNull() ? 0 : try integer()
        case .startTimeUs: fields.startTimeUs = try integer()
        case .durationUs: fields.durationUs = try integer()
        case .queueUs: fields.queueUs = try integer()
        case .initUs: fields.initUs = try integer()
        case .cpuUs: fields.cpuUs = try consumeNull() ? 0 : try integer()
        case .memoryPeakBytes: fields.memoryPeakBytes = try consumeNull() ? 0 : try integer()
        case .memoryMB: fields.memoryMB = try consumeNull() ? 0 : try integer()
        case .httpStatus: fields.httpStatus = try integer()
        case .requestBytes: fields.requestBytes = try integer()
        case .responseBytes: fields.responseBytes = try integer()
        case .coldStart: fields.coldStart = try boolean()
        case .status:
            let text = try string()
            guard let status = InvocationStatus(rawValue: text) else {
                throw ShapeError("unknown status '\(text)'")
            }
            fields.status = status
        case .limit: fields.limit = try consumeNull() ? nil : try string()
        case .reason: fields.reason = try consumeNull() ? nil : try string()
        case .billedMs: if try !consumeNull() { _ = try integer() }
        case .gbSeconds: if try !consumeNull() { try skipNumber() }
        }
    }

    // MARK: Structure

    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return
            }
        }
    }

    /// Skips whitespace and `byte` if it is next.
    mutating func consume(_ byte: UInt8) throws(ShapeError) -> Bool {
        skipWhitespace()
        guard offset < bytes.count else { throw ShapeError("unexpected end of data") }
        if bytes[offset] == byte {
            offset += 1
            return true
        }
        return false
    }

    mutating func expect(_ byte: UInt8, _ message: String) throws(ShapeError) {
        guard try consume(byte) else { throw ShapeError(message) }
    }

    /// After an object member: true for `,`, false for `}`.
    mutating func nextMember() throws(ShapeError) -> Bool {
        if try consume(UInt8(ascii: ",")) { return true }
        guard try consume(UInt8(ascii: "}")) else { throw ShapeError("expected ',' or '}' after a value") }
        return false
    }

    /// An object key and its colon: the raw bytes between the quotes. Keys are plain ASCII; an escaped key cannot
    /// be one of ours.
    mutating func keyBytes() throws(ShapeError) -> UnsafeRawBufferPointer {
        key = nil
        try expect(UInt8(ascii: "\""), "expected a key")
        let start = offset
        while offset < bytes.count, bytes[offset] != UInt8(ascii: "\"") {
            let byte = bytes[offset]
            guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else {
                throw ShapeError("unknown key (keys are plain ASCII)")
            }
            offset += 1
        }
        guard offset < bytes.count else { throw ShapeError("unexpected end of data in a key") }
        let name = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
        offset += 1
        guard !name.isEmpty else { throw ShapeError("unknown key ''") }
        try expect(UInt8(ascii: ":"), "expected ':' after a key")
        return name
    }

    // MARK: Values

    mutating func consumeNull() throws(ShapeError) -> Bool {
        skipWhitespace()
        guard offset + 4 <= bytes.count, bytes[offset] == UInt8(ascii: "n") else { return false }
        guard bytes[offset + 1] == UInt8(ascii: "u"), bytes[offset + 2] == UInt8(ascii: "l"),
            bytes[offset + 3] == UInt8(ascii: "l")
        else { throw ShapeError("invalid literal") }
        offset += 4
        return true
    }

    mutating func boolean() throws(ShapeError) -> Bool {
        skipWhitespace()
        if matches("true") {
            offset += 4
            return true
        }
        if matches("false") {
            offset += 5
            return false
        }
        throw ShapeError("expected true or false")
    }

    func matches(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard offset + count <= bytes.count else { return false }
        return literal.withUTF8Buffer { UnsafeRawBufferPointer($0).elementsEqual(bytes[offset..<offset + count]) }
    }

    /// A JSON integer (optional minus, no leading zero, no fraction or exponent) that fits in `Int64`.
    mutating func integer() throws(ShapeError) -> Int64 {
        skipWhitespace()
        let negative = offset < bytes.count && bytes[offset] == UInt8(ascii: "-")
        if negative { offset += 1 }
        let start = offset
        var value: Int64 = 0
        while offset < bytes.count, case let digit = bytes[offset] &- UInt8(ascii: "0"), digit < 10 {
            // Accumulated negatively, so Int64.min fits.
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = times10.subtractingReportingOverflow(Int64(digit))
            guard !overflow1, !overflow2 else { throw ShapeError("the number is out of range") }
            value = next
            offset += 1
        }
        guard offset > start else { throw ShapeError("expected an integer") }
        guard offset - start == 1 || bytes[start] != UInt8(ascii: "0") else {
            throw ShapeError("a number may not start with 0")
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") || bytes[offset] | 0x20 == UInt8(ascii: "e") {
            throw ShapeError("expected an integer, without fraction or exponent")
        }
        if negative { return value }
        guard value != .min else { throw ShapeError("the number is out of range") }
        return -value
    }

    /// Any JSON number, not kept (`gb_seconds`, which the control plane derives itself).
    mutating func skipNumber() throws(ShapeError) {
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        func digits(_ parser: inout Parser) -> Int {
            let start = parser.offset
            while parser.offset < parser.bytes.count, parser.bytes[parser.offset] &- UInt8(ascii: "0") < 10 {
                parser.offset += 1
            }
            return parser.offset - start
        }
        let start = offset
        let integerDigits = digits(&self)
        guard integerDigits > 0 else { throw ShapeError("expected a number") }
        guard integerDigits == 1 || bytes[start] != UInt8(ascii: "0") else {
            throw ShapeError("a number may not start with 0")
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            guard digits(&self) > 0 else { throw ShapeError("expected digits after '.'") }
        }
        if offset < bytes.count, bytes[offset] | 0x20 == UInt8(ascii: "e") {
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") {
                offset += 1
            }
            guard digits(&self) > 0 else { throw ShapeError("expected digits in the exponent") }
        }
        guard offset - start <= 64 else { throw ShapeError("the number is too long") }
    }

    /// A JSON string. When its bytes equal `reusing`'s, returns `reusing` (no new storage).
    mutating func string(reusing previous: String? = nil) throws(ShapeError) -> String {
        skipWhitespace()
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw ShapeError("expected a string") }
        offset += 1
        let start = offset
        var ascii = true
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
                offset += 1
                if let previous, previous.utf8.count == raw.count,
                    previous.utf8.withContiguousStorageIfAvailable({ equalBytes(UnsafeRawBufferPointer($0), raw) })
                        == true
                {
                    return previous
                }
                let utf8 = raw.assumingMemoryBound(to: UInt8.self)
                if ascii { return String(decoding: utf8, as: UTF8.self) }
                guard let text = String(validating: utf8, as: UTF8.self) else {
                    offset = start
                    throw ShapeError("the string is not valid UTF-8")
                }
                return text
            }
            if byte == UInt8(ascii: "\\") {
                return try escapedString(from: start)
            }
            guard byte >= 0x20 else { throw ShapeError("a control character must be escaped in a string") }
            if byte >= 0x80 { ascii = false }
            offset += 1
        }
        throw ShapeError("unexpected end of data in a string")
    }

    /// The rest of a string that has escapes, from its first byte at `start`.
    mutating func escapedString(from start: Int) throws(ShapeError) -> String {
        var text: [UInt8] = Array(bytes[start..<offset])
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let result = String(validating: text, as: UTF8.self) else {
                    offset = start
                    throw ShapeError("the string is not valid UTF-8")
                }
                return result
            case UInt8(ascii: "\\"):
                guard offset < bytes.count else { break }
                let escape = bytes[offset]
                offset += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escape)
                case UInt8(ascii: "b"): text.append(0x08)
                case UInt8(ascii: "f"): text.append(0x0C)
                case UInt8(ascii: "n"): text.append(0x0A)
                case UInt8(ascii: "r"): text.append(0x0D)
                case UInt8(ascii: "t"): text.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard matches("\\u") else { throw ShapeError("a lone surrogate escape in a string") }
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else {
                            throw ShapeError("a lone surrogate escape in a string")
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw ShapeError("a lone surrogate escape in a string")
                    }
                    text.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
                default:
                    offset -= 1
                    throw ShapeError("invalid escape in a string")
                }
            default:
                guard byte >= 0x20 else {
                    offset -= 1
                    throw ShapeError("a control character must be escaped in a string")
                }
                text.append(byte)
            }
        }
        throw ShapeError("unexpected end of data in a string")
    }

    /// Four hex digits of a `\u` escape.
    mutating func hex4() throws(ShapeError) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw ShapeError("unexpected end of data in a string") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw ShapeError("invalid \\u escape in a string")
            }
            value = value << 4 | UInt32(digit)
            offset += 1
        }
        return value
    }
}
