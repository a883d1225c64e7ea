/// The shipping JSON of usage records, written by hand.
///
/// A host ships every record it serves, so the encoder's cost is paid per call; Foundation's `JSONEncoder` builds a
/// container, a key and a boxed value for each of 23 fields (shipping was about half of the ledger's cost to a host,
/// see `Samples/bench/README.md`). This writes the very bytes
/// `JSONEncoder` writes with `JSONCoding`'s settings (sorted keys, slashes unescaped) for the same value — the
/// control plane's decoder takes them unchanged; `UsageWireEncodingTests` compares the two byte for byte.
extension UsageRecord {
    /// Appends the record's JSON object to `out`.
    public func appendWireJSON(to out: inout [UInt8]) {
        // Keys in sorted order, as `JSONEncoder.OutputFormatting.sortedKeys` writes them.
        out.append(UInt8(ascii: "{"))
        Self.appendWireKey("billed_ms", to: &out, first: true)
        Self.appendWireInteger(billedMs, to: &out)
        Self.appendWireKey("cold_start", to: &out)
        out.append(contentsOf: coldStart ? Self.trueBytes : Self.falseBytes)
        Self.appendWireKey("cpu_us", to: &out)
        Self.appendWireInteger(cpuUs, to: &out)
        Self.appendWireKey("duration_us", to: &out)
        Self.appendWireInteger(durationUs, to: &out)
        Self.appendWireKey("function", to: &out)
        Self.appendWireString(function, to: &out)
        Self.appendWireKey("gb_seconds", to: &out)
        Self.appendWireDouble(gbSeconds, to: &out)
        Self.appendWireKey("host", to: &out)
        Self.appendWireString(host, to: &out)
        Self.appendWireKey("http_status", to: &out)
        Self.appendWireInteger(Int64(httpStatus), to: &out)
        Self.appendWireKey("init_us", to: &out)
        Self.appendWireInteger(initUs, to: &out)
        Self.appendWireKey("invocation_id", to: &out)
        Self.appendWireString(invocationID, to: &out)
        if let limit {
            Self.appendWireKey("limit", to: &out)
            Self.appendWireString(limit, to: &out)
        }
        Self.appendWireKey("memory_mb", to: &out)
        Self.appendWireInteger(Int64(memoryMB), to: &out)
        Self.appendWireKey("memory_peak_bytes", to: &out)
        Self.appendWireInteger(memoryPeakBytes, to: &out)
        Self.appendWireKey("queue_us", to: &out)
        Self.appendWireInteger(queueUs, to: &out)
        if let reason {
            Self.appendWireKey("reason", to: &out)
            Self.appendWireString(reason, to: &out)
        }
        Self.appendWireKey("region", to: &out)
        Self.appendWireString(region, to: &out)
        Self.appendWireKey("request_bytes", to: &out)
        Self.appendWireInteger(requestBytes, to: &out)
        Self.appendWireKey("response_bytes", to: &out)
        Self.appendWireInteger(responseBytes, to: &out)
        Self.appendWireKey("start_time_us", to: &out)
        Self.appendWireInteger(startTimeUs, to: &out)
        Self.appendWireKey("status", to: &out)
        Self.appendWireString(status.rawValue, to: &out)
        Self.appendWireKey("tenant", to: &out)
        Self.appendWireString(tenant, to: &out)
        Self.appendWireKey("version", to: &out)
        Self.appendWireString(version, to: &out)
        Self.appendWireKey("version_number", to: &out)
        Self.appendWireInteger(Int64(versionNumber), to: &out)
        out.append(UInt8(ascii: "}"))
    }

    private static let trueBytes: [UInt8] = Array("true".utf8)
    private static let falseBytes: [UInt8] = Array("false".utf8)

    private static func appendWireKey(_ key: StaticString, to out: inout [UInt8], first: Bool = false) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
    }

    /// Decimal digits, no allocation.
    package static func appendWireInteger(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        if magnitude < 10 {
            out.append(UInt8(ascii: "0") + UInt8(magnitude))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var count = 0
            while magnitude > 0 {
                digits[19 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[(20 - count)...]))
        }
    }

    /// As `JSONEncoder` writes a `Double`: its shortest round-trip description, without a trailing `.0`.
    package static func appendWireDouble(_ value: Double, to out: inout [UInt8]) {
        if value == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        out.append(contentsOf: text.utf8)
    }

    /// A JSON string: `"` and `\` escaped, control characters as `\b \t \n \f \r` or `\u00XX`, everything else
    /// (including `/` and non-ASCII UTF-8) as is.
    package static func appendWireString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in
            var start = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                start = index + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                default:
                    let hex: StaticString = "0123456789abcdef"
                    out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    out.append(hex.utf8Start[Int(byte >> 4)])
                    out.append(hex.utf8Start[Int(byte & 0xF)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension UsageBatch {
    /// The JSON `JSONEncoder` writes for `UsageBatch(host:records:)` with `JSONCoding`'s settings, written by hand
    /// (see ``UsageRecord/appendWireJSON(to:)``).
    public static func wireJSON(host: String, records: some Sequence<UsageRecord>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(records.underestimatedCount * 640 + 64)
        out.append(contentsOf: #"{"host":"#.utf8)
        UsageRecord.appendWireString(host, to: &out)
        out.append(contentsOf: #","records":["#.utf8)
        var first = true
        for record in records {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            record.appendWireJSON(to: &out)
        }
        out.append(contentsOf: "]}".utf8)
        return out
    }
}
