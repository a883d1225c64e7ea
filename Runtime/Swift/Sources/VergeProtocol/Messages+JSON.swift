/// Heads are sent on every call: their JSON is written directly, field by field, instead of through `JSONEncoder`
/// (whose generic machinery cost more than the rest of the host's per-call work). Any JSON parser reads it;
/// `JSONDecoder` decodes it back to an equal value (tested, including that every stored property is written).
extension RequestHead {
    /// The UTF-8 JSON text of the head.
    public func jsonBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + JSONText.estimatedSize(headers))
        out.append(UInt8(ascii: "{"))
        JSONText.key("invocation_id", first: true, &out)
        JSONText.string(invocationID, &out)
        JSONText.key("method", &out)
        JSONText.string(method, &out)
        JSONText.key("path", &out)
        JSONText.string(path, &out)
        JSONText.key("query", &out)
        JSONText.string(query, &out)
        JSONText.key("headers", &out)
        JSONText.stringArrays(headers, &out)
        JSONText.key("deadline_ms", &out)
        JSONText.integer(deadlineMs, &out)
        if let client {
            JSONText.key("client", &out)
            out.append(UInt8(ascii: "{"))
            JSONText.key("latitude", first: true, &out)
            JSONText.number(client.latitude, &out)
            JSONText.key("longitude", &out)
            JSONText.number(client.longitude, &out)
            JSONText.key("source", &out)
            JSONText.string(client.source, &out)
            if let country = client.country {
                JSONText.key("country", &out)
                JSONText.string(country, &out)
            }
            if let address = client.address {
                JSONText.key("address", &out)
                JSONText.string(address, &out)
            }
            if let distanceKm = client.distanceKm {
                JSONText.key("distance_km", &out)
                JSONText.number(distanceKm, &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        JSONText.key("host", &out)
        out.append(UInt8(ascii: "{"))
        JSONText.key("name", first: true, &out)
        JSONText.string(host.name, &out)
        JSONText.key("latitude", &out)
        JSONText.number(host.latitude, &out)
        JSONText.key("longitude", &out)
        JSONText.number(host.longitude, &out)
        out.append(UInt8(ascii: "}"))
        JSONText.key("function", &out)
        out.append(UInt8(ascii: "{"))
        JSONText.key("tenant", first: true, &out)
        JSONText.string(function.tenant, &out)
        JSONText.key("name", &out)
        JSONText.string(function.name, &out)
        JSONText.key("version", &out)
        JSONText.string(function.version, &out)
        out.append(UInt8(ascii: "}"))
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// Pieces of JSON text (RFC 8259) appended to a byte array.
enum JSONText {
    static func key(_ name: StaticString, first: Bool = false, _ out: inout [UInt8]) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
    }

    /// A string: `"` and `\` escaped, control characters as `\u00XX`, everything else as its UTF-8 bytes.
    static func string(_ value: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0..<0x20:
                let hex: StaticString = "0123456789abcdef"
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                out.append(hex.utf8Start[Int(byte >> 4)])
                out.append(hex.utf8Start[Int(byte & 0xF)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// An array of arrays of strings, as header pairs are sent: `[["name","value"],…]`.
    static func stringArrays(_ arrays: [[String]], _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (index, array) in arrays.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "["))
            for (position, part) in array.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                string(part, &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "]"))
    }

    /// Roughly how many bytes ``stringArrays(_:_:)`` writes for `arrays` (before escapes), to reserve once.
    static func estimatedSize(_ arrays: [[String]]) -> Int {
        arrays.reduce(2) { $0 + 8 + $1.reduce(0) { $0 + $1.utf8.count } }
    }

    static func integer(_ value: Int64, _ out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }

    /// A finite number in Swift's shortest round-trip form (`48.85`, `1e-05`), which is valid JSON; a non-finite
    /// one (never a valid coordinate) as 0.
    static func number(_ value: Double, _ out: inout [UInt8]) {
        guard value.isFinite else {
            out.append(UInt8(ascii: "0"))
            return
        }
        if value == value.rounded(), abs(value) < 1e15 {
            out.append(contentsOf: String(Int64(value)).utf8)
        } else {
            out.append(contentsOf: value.description.utf8)
        }
    }
}

extension ResponseHead {
    /// The UTF-8 JSON text of the head, written directly (the Swift runtime sends one per call).
    public func jsonBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + JSONText.estimatedSize(headers))
        out.append(UInt8(ascii: "{"))
        JSONText.key("status", first: true, &out)
        JSONText.integer(Int64(status), &out)
        JSONText.key("headers", &out)
        JSONText.stringArrays(headers, &out)
        if let bodyLength {
            JSONText.key("body_length", &out)
            JSONText.integer(Int64(bodyLength), &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}
