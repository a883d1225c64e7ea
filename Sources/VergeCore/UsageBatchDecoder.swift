import VergeProtocol

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
        Self.names[rawValue].withUnsafeBytes { $0.elementsEqual(bytes) }
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
    var scanner: JSONScanner
    var offset: Int { scanner.offset }
    /// Where the parser is, for error messages: `records.3.tenant: `, or empty at the top.
    var recordIndex: Int?
    var key: String?

    init(_ bytes: UnsafeRawBufferPointer) { scanner = JSONScanner(bytes) }

    /// A shape error at the current position.
    func shape(_ message: String) -> JSONScanner.Failure { scanner.failure(message) }

    var path: String {
        switch (recordIndex, key) {
        case (let index?, let key?): "records.\(index).\(key): "
        case (let index?, nil): "records.\(index): "
        case (nil, let key?): "\(key): "
        case (nil, nil): ""
        }
    }

    // MARK: The batch

    mutating func batch() throws(JSONScanner.Failure) -> UsageBatch {
        try scanner.expect(UInt8(ascii: "{"), "the batch must be a JSON object")
        var host: String?
        var records: [UsageRecord]?
        if try !scanner.consume(UInt8(ascii: "}")) {
            repeat {
                let name = try scanner.keyBytes()
                if name.elementsEqual("host".utf8) {
                    guard host == nil else { throw shape("the key 'host' appears twice") }
                    key = "host"
                    host = try scanner.string()
                } else if name.elementsEqual("records".utf8) {
                    guard records == nil else { throw shape("the key 'records' appears twice") }
                    key = "records"
                    records = try recordArray()
                } else {
                    throw shape(
                        "unknown key '\(String(decoding: name, as: UTF8.self))' (a batch has host and records)")
                }
                key = nil
            } while try scanner.nextMember()
        }
        guard let host else { throw shape("missing key 'host'") }
        guard let records else { throw shape("missing key 'records'") }
        scanner.skipWhitespace()
        guard offset == scanner.bytes.count else { throw shape("unexpected data after the batch") }
        return UsageBatch(host: host, records: records)
    }

    mutating func recordArray() throws(JSONScanner.Failure) -> [UsageRecord] {
        try scanner.expect(UInt8(ascii: "["), "expected an array of records")
        var records: [UsageRecord] = []
        // A record takes at least 300 bytes in the shipping format; reserving by that never over-allocates much.
        records.reserveCapacity(min((scanner.bytes.count - offset) / 300 + 1, 100_000))
        if try scanner.consume(UInt8(ascii: "]")) { return records }
        var previous: UsageRecord?
        repeat {
            recordIndex = records.count
            key = nil
            let record = try record(previous: previous)
            records.append(record)
            previous = record
            scanner.skipWhitespace()
            guard offset < scanner.bytes.count else { throw shape("the array of records is not closed") }
            let byte = scanner.bytes[offset]
            if byte == UInt8(ascii: "]") {
                scanner.offset += 1
                break
            }
            guard byte == UInt8(ascii: ",") else { throw shape("expected ',' or ']' after a record") }
            scanner.offset += 1
        } while true
        recordIndex = nil
        return records
    }

    /// One record. Text fields equal to `previous`'s share its storage (a batch repeats tenants, functions,
    /// versions and its host).
    mutating func record(previous: UsageRecord?) throws(JSONScanner.Failure) -> UsageRecord {
        try scanner.expect(UInt8(ascii: "{"), "a record must be a JSON object")
        var fields = RecordFields()
        var seen: UInt32 = 0
        var expected = RecordKey.sorted[0]
        if try !scanner.consume(UInt8(ascii: "}")) {
            repeat {
                let name = try scanner.keyBytes()
                guard let field = RecordKey.find(name, expected: expected) else {
                    key = nil
                    throw shape("unknown key '\(String(decoding: name, as: UTF8.self))'")
                }
                key = field.name
                guard seen & field.bit == 0 else { throw shape("the key appears twice") }
                seen |= field.bit
                expected = RecordKey.following[field.rawValue]
                try value(for: field, into: &fields, previous: previous)
                key = nil
            } while try scanner.nextMember()
        }
        let missing = RecordKey.required & ~seen
        if missing != 0 {
            let first = RecordKey(rawValue: missing.trailingZeroBitCount)!
            throw shape("missing key '\(first.name)'")
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
    ) throws(JSONScanner.Failure) {
        switch field {
        case .invocationID: fields.invocationID = try scanner.string()
        case .tenant: fields.tenant = try scanner.string(reusing: previous?.tenant)
        case .function: fields.function = try scanner.string(reusing: previous?.function)
        case .version: fields.version = try scanner.string(reusing: previous?.version)
        case .host: fields.host = try scanner.string(reusing: previous?.host)
        case .region: fields.region = try scanner.consumeNull() ? "" : try scanner.string(reusing: previous?.region)
        case .versionNumber: fields.versionNumber = try scanner.consumeNull() ? 0 : try scanner.integer()
        case .startTimeUs: fields.startTimeUs = try scanner.integer()
        case .durationUs: fields.durationUs = try scanner.integer()
        case .queueUs: fields.queueUs = try scanner.integer()
        case .initUs: fields.initUs = try scanner.integer()
        case .cpuUs: fields.cpuUs = try scanner.consumeNull() ? 0 : try scanner.integer()
        case .memoryPeakBytes: fields.memoryPeakBytes = try scanner.consumeNull() ? 0 : try scanner.integer()
        case .memoryMB: fields.memoryMB = try scanner.consumeNull() ? 0 : try scanner.integer()
        case .httpStatus: fields.httpStatus = try scanner.integer()
        case .requestBytes: fields.requestBytes = try scanner.integer()
        case .responseBytes: fields.responseBytes = try scanner.integer()
        case .coldStart: fields.coldStart = try scanner.boolean()
        case .status:
            let text = try scanner.string()
            guard let status = InvocationStatus(rawValue: text) else {
                throw shape("unknown status '\(text)'")
            }
            fields.status = status
        case .limit: fields.limit = try scanner.consumeNull() ? nil : try scanner.string()
        case .reason: fields.reason = try scanner.consumeNull() ? nil : try scanner.string()
        case .billedMs: if try !scanner.consumeNull() { _ = try scanner.integer() }
        case .gbSeconds: if try !scanner.consumeNull() { try scanner.skipNumber() }
        }
    }
}
