/// Heads are read on every call: each is read straight from its JSON text with ``JSONScanner`` instead of through
/// `JSONDecoder`. The rules are the protocol's (`Runtime/PROTOCOL.md`): keys a reader does not know are skipped, a
/// required key that is missing or a key that appears twice is malformed, an optional value may be absent or
/// `null`. What these readers accept, `JSONDecoder` decodes to an equal value (tested).
extension RequestHead {
    /// Reads a `request_head` payload.
    public init(json: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try JSONHeads.read("request_head", json) { (scanner) throws(JSONScanner.Failure) in
            try RequestHead(&scanner)
        }
    }

    /// Reads a `request_head` payload.
    public init(json: [UInt8]) throws(ProtocolError) {
        self = try JSONHeads.withBytes(json) { bytes throws(ProtocolError) in try RequestHead(json: bytes) }
    }

    static let keys: [StaticString] = [
        "invocation_id", "method", "path", "query", "headers", "deadline_ms", "host", "function", "client",
    ]

    init(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        var invocationID = "", method = "", path = "", query = "", headers: [[String]] = [], deadlineMs: Int64 = 0
        var client: ClientLocation?
        var host = HostInfo(name: "", latitude: 0, longitude: 0)
        var function = FunctionInfo(tenant: "", name: "", version: "")
        try JSONHeads.object(&scanner, keys: Self.keys, required: 8) { (index, scanner) throws(JSONScanner.Failure) in
            switch index {
            case 0: invocationID = try scanner.string()
            case 1: method = try scanner.string()
            case 2: path = try scanner.string()
            case 3: query = try scanner.string()
            case 4: headers = try JSONHeads.stringArrays(&scanner)
            case 5: deadlineMs = try scanner.integer()
            case 6: host = try HostInfo(&scanner)
            case 7: function = try FunctionInfo(&scanner)
            default: client = try scanner.consumeNull() ? nil : try ClientLocation(&scanner)
            }
        }
        self.init(
            invocationID: invocationID, method: method, path: path, query: query, headers: headers,
            deadlineMs: deadlineMs, client: client, host: host, function: function)
    }
}

extension ResponseHead {
    /// Reads a `response_head` payload (sent by the worker: hostile input to the host).
    public init(json: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try JSONHeads.read("response_head", json) { (scanner) throws(JSONScanner.Failure) in
            try ResponseHead(&scanner)
        }
    }

    /// Reads a `response_head` payload (sent by the worker: hostile input to the host).
    public init(json: [UInt8]) throws(ProtocolError) {
        self = try JSONHeads.withBytes(json) { bytes throws(ProtocolError) in try ResponseHead(json: bytes) }
    }

    static let keys: [StaticString] = ["status", "headers", "body_length"]

    init(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        var status = 0
        var headers: [[String]] = []
        var bodyLength: Int?
        try JSONHeads.object(&scanner, keys: Self.keys, required: 2) { (index, scanner) throws(JSONScanner.Failure) in
            switch index {
            case 0: status = try JSONHeads.int(&scanner)
            case 1: headers = try JSONHeads.stringArrays(&scanner)
            default: bodyLength = try scanner.consumeNull() ? nil : try JSONHeads.int(&scanner)
            }
        }
        self.init(status: status, headers: headers, bodyLength: bodyLength)
    }
}

extension ClientLocation {
    static let keys: [StaticString] = ["latitude", "longitude", "source", "country", "address", "distance_km"]

    init(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        var latitude = 0.0, longitude = 0.0, source = ""
        var country: String?, address: String?, distanceKm: Double?
        try JSONHeads.object(&scanner, keys: Self.keys, required: 3) { (index, scanner) throws(JSONScanner.Failure) in
            switch index {
            case 0: latitude = try scanner.number()
            case 1: longitude = try scanner.number()
            case 2: source = try scanner.string()
            case 3: country = try scanner.consumeNull() ? nil : try scanner.string()
            case 4: address = try scanner.consumeNull() ? nil : try scanner.string()
            default: distanceKm = try scanner.consumeNull() ? nil : try scanner.number()
            }
        }
        self.init(
            latitude: latitude, longitude: longitude, source: source, country: country, address: address,
            distanceKm: distanceKm)
    }
}

extension HostInfo {
    static let keys: [StaticString] = ["name", "latitude", "longitude"]

    init(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        var name = "", latitude = 0.0, longitude = 0.0
        try JSONHeads.object(&scanner, keys: Self.keys, required: 3) { (index, scanner) throws(JSONScanner.Failure) in
            switch index {
            case 0: name = try scanner.string()
            case 1: latitude = try scanner.number()
            default: longitude = try scanner.number()
            }
        }
        self.init(name: name, latitude: latitude, longitude: longitude)
    }
}

extension FunctionInfo {
    static let keys: [StaticString] = ["tenant", "name", "version"]

    init(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        var tenant = "", name = "", version = ""
        try JSONHeads.object(&scanner, keys: Self.keys, required: 3) { (index, scanner) throws(JSONScanner.Failure) in
            switch index {
            case 0: tenant = try scanner.string()
            case 1: name = try scanner.string()
            default: version = try scanner.string()
            }
        }
        self.init(tenant: tenant, name: name, version: version)
    }
}

/// What the head readers share.
enum JSONHeads {
    /// Runs `read` over `json`, which must hold exactly one value; any failure is the protocol's "malformed head".
    static func read<Head>(
        _ kind: String, _ json: UnsafeRawBufferPointer,
        _ read: (inout JSONScanner) throws(JSONScanner.Failure) -> Head
    ) throws(ProtocolError) -> Head {
        var scanner = JSONScanner(json)
        do {
            let head = try read(&scanner)
            try scanner.end()
            return head
        } catch {
            throw ProtocolError("malformed \(kind) payload: \(error)")
        }
    }

    /// `body` with the bytes of `array`, keeping its typed error.
    static func withBytes<Head>(
        _ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(ProtocolError) -> Head
    ) throws(ProtocolError) -> Head {
        let result = array.withUnsafeBytes { bytes -> Result<Head, ProtocolError> in
            do throws(ProtocolError) { return .success(try body(bytes)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Reads an object whose keys are `keys` (the first `required` of them must be present, none may repeat),
    /// calling `member` with the index of each key it holds, the scanner at its value; skips other keys.
    static func object(
        _ scanner: inout JSONScanner, keys: [StaticString], required: Int,
        _ member: (Int, inout JSONScanner) throws(JSONScanner.Failure) -> Void
    ) throws(JSONScanner.Failure) {
        try scanner.expect(UInt8(ascii: "{"), "expected an object")
        var seen: UInt64 = 0
        if try !scanner.consume(UInt8(ascii: "}")) {
            repeat {
                let at = scanner.offset
                let name = try scanner.keyBytes()
                guard let index = keys.firstIndex(where: { name.elementsEqual($0) }) else {
                    try scanner.skipValue()
                    continue
                }
                guard seen & (1 << index) == 0 else {
                    throw JSONScanner.Failure("the key '\(keys[index])' appears twice", at: at)
                }
                seen |= 1 << index
                try member(index, &scanner)
            } while try scanner.nextMember()
        }
        if let missing = (0..<required).first(where: { seen & (1 << $0) == 0 }) {
            throw scanner.failure("the key '\(keys[missing])' is missing")
        }
    }

    /// `[["name","value"],…]`: arrays of strings.
    static func stringArrays(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) -> [[String]] {
        var arrays: [[String]] = []
        try scanner.expect(UInt8(ascii: "["), "expected an array")
        if try scanner.consume(UInt8(ascii: "]")) { return arrays }
        repeat {
            var strings: [String] = []
            try scanner.expect(UInt8(ascii: "["), "expected an array of strings")
            if try !scanner.consume(UInt8(ascii: "]")) {
                repeat { strings.append(try scanner.string()) } while try scanner.nextElement()
            }
            arrays.append(strings)
        } while try scanner.nextElement()
        return arrays
    }

    /// An integer that fits `Int`.
    static func int(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) -> Int {
        let at = scanner.offset
        guard let value = Int(exactly: try scanner.integer()) else {
            throw JSONScanner.Failure("the number is out of range", at: at)
        }
        return value
    }
}

extension UnsafeRawBufferPointer {
    /// Whether these bytes are the UTF-8 of `text`.
    func elementsEqual(_ text: StaticString) -> Bool {
        count == text.utf8CodeUnitCount && text.withUTF8Buffer { UnsafeRawBufferPointer($0).elementsEqual(self) }
    }
}
