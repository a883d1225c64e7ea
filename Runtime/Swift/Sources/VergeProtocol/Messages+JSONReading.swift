/// Heads are read on every call: each is read straight from its JSON text with ``JSONScanner`` instead of through
/// `JSONDecoder`. The rules are the protocol's (`Runtime/PROTOCOL.md`): keys a reader does not know are skipped, a
/// required key that is missing or a key that appears twice is malformed, an optional value may be absent or
/// `null`. What these readers accept, `JSONDecoder` decodes to an equal value (tested).
extension RequestHead {
    /// Reads a `request_head` payload.
    public init(json: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try JSONHeads.read("request_head", json) { scanner in try RequestHead(&scanner) }
    }

    /// Reads a `request_head` payload.
    public init(json: [UInt8]) throws(ProtocolError) {
        self = try JSONHeads.withBytes(json) { bytes throws(ProtocolError) in try RequestHead(json: bytes) }
    }

    private enum Key: Int {
        case invocationID, method, path, query, headers, deadlineMs, client, host, function
    }

    init(_ scanner: inout JSONScanner) throws {
        var seen = KeySet()
        var invocationID = "", method = "", path = "", query = "", headers: [[String]] = [], deadlineMs: Int64 = 0
        var client: ClientLocation?
        var host = HostInfo(name: "", latitude: 0, longitude: 0)
        var function = FunctionInfo(tenant: "", name: "", version: "")
        try scanner.members { key, scanner in
            let at = scanner.offset
            if key.equals("invocation_id") {
                try seen.insert(Key.invocationID.rawValue, "invocation_id", at: at)
                invocationID = try scanner.string()
            } else if key.equals("method") {
                try seen.insert(Key.method.rawValue, "method", at: at)
                method = try scanner.string()
            } else if key.equals("path") {
                try seen.insert(Key.path.rawValue, "path", at: at)
                path = try scanner.string()
            } else if key.equals("query") {
                try seen.insert(Key.query.rawValue, "query", at: at)
                query = try scanner.string()
            } else if key.equals("headers") {
                try seen.insert(Key.headers.rawValue, "headers", at: at)
                headers = try JSONHeads.stringArrays(&scanner)
            } else if key.equals("deadline_ms") {
                try seen.insert(Key.deadlineMs.rawValue, "deadline_ms", at: at)
                deadlineMs = try scanner.integer()
            } else if key.equals("client") {
                try seen.insert(Key.client.rawValue, "client", at: at)
                client = scanner.consumeNull() ? nil : try ClientLocation(&scanner)
            } else if key.equals("host") {
                try seen.insert(Key.host.rawValue, "host", at: at)
                host = try HostInfo(&scanner)
            } else if key.equals("function") {
                try seen.insert(Key.function.rawValue, "function", at: at)
                function = try FunctionInfo(&scanner)
            } else {
                try scanner.skipValue()
            }
        }
        let required: [(Key, String)] = [
            (.invocationID, "invocation_id"), (.method, "method"), (.path, "path"), (.query, "query"),
            (.headers, "headers"), (.deadlineMs, "deadline_ms"), (.host, "host"), (.function, "function"),
        ]
        try JSONHeads.require(required.map { (seen.contains($0.0.rawValue), $0.1) }, at: scanner.offset)
        self.init(
            invocationID: invocationID, method: method, path: path, query: query, headers: headers,
            deadlineMs: deadlineMs, client: client, host: host, function: function)
    }
}

extension ResponseHead {
    /// Reads a `response_head` payload (sent by the worker: hostile input to the host).
    public init(json: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try JSONHeads.read("response_head", json) { scanner in try ResponseHead(&scanner) }
    }

    /// Reads a `response_head` payload (sent by the worker: hostile input to the host).
    public init(json: [UInt8]) throws(ProtocolError) {
        self = try JSONHeads.withBytes(json) { bytes throws(ProtocolError) in try ResponseHead(json: bytes) }
    }

    init(_ scanner: inout JSONScanner) throws {
        var seen = KeySet()
        var status = 0
        var headers: [[String]] = []
        var bodyLength: Int?
        try scanner.members { key, scanner in
            let at = scanner.offset
            if key.equals("status") {
                try seen.insert(0, "status", at: at)
                status = try JSONHeads.int(&scanner)
            } else if key.equals("headers") {
                try seen.insert(1, "headers", at: at)
                headers = try JSONHeads.stringArrays(&scanner)
            } else if key.equals("body_length") {
                try seen.insert(2, "body_length", at: at)
                bodyLength = scanner.consumeNull() ? nil : try JSONHeads.int(&scanner)
            } else {
                try scanner.skipValue()
            }
        }
        try JSONHeads.require([(seen.contains(0), "status"), (seen.contains(1), "headers")], at: scanner.offset)
        self.init(status: status, headers: headers, bodyLength: bodyLength)
    }
}

extension ClientLocation {
    init(_ scanner: inout JSONScanner) throws {
        var seen = KeySet()
        var latitude = 0.0, longitude = 0.0, source = ""
        var country: String?, address: String?, distanceKm: Double?
        try scanner.members { key, scanner in
            let at = scanner.offset
            if key.equals("latitude") {
                try seen.insert(0, "latitude", at: at)
                latitude = try scanner.number()
            } else if key.equals("longitude") {
                try seen.insert(1, "longitude", at: at)
                longitude = try scanner.number()
            } else if key.equals("source") {
                try seen.insert(2, "source", at: at)
                source = try scanner.string()
            } else if key.equals("country") {
                try seen.insert(3, "country", at: at)
                country = scanner.consumeNull() ? nil : try scanner.string()
            } else if key.equals("address") {
                try seen.insert(4, "address", at: at)
                address = scanner.consumeNull() ? nil : try scanner.string()
            } else if key.equals("distance_km") {
                try seen.insert(5, "distance_km", at: at)
                distanceKm = scanner.consumeNull() ? nil : try scanner.number()
            } else {
                try scanner.skipValue()
            }
        }
        try JSONHeads.require(
            [(seen.contains(0), "client.latitude"), (seen.contains(1), "client.longitude"),
             (seen.contains(2), "client.source")], at: scanner.offset)
        self.init(
            latitude: latitude, longitude: longitude, source: source, country: country, address: address,
            distanceKm: distanceKm)
    }
}

extension HostInfo {
    init(_ scanner: inout JSONScanner) throws {
        var seen = KeySet()
        var name = "", latitude = 0.0, longitude = 0.0
        try scanner.members { key, scanner in
            let at = scanner.offset
            if key.equals("name") {
                try seen.insert(0, "name", at: at)
                name = try scanner.string()
            } else if key.equals("latitude") {
                try seen.insert(1, "latitude", at: at)
                latitude = try scanner.number()
            } else if key.equals("longitude") {
                try seen.insert(2, "longitude", at: at)
                longitude = try scanner.number()
            } else {
                try scanner.skipValue()
            }
        }
        try JSONHeads.require(
            [(seen.contains(0), "host.name"), (seen.contains(1), "host.latitude"),
             (seen.contains(2), "host.longitude")], at: scanner.offset)
        self.init(name: name, latitude: latitude, longitude: longitude)
    }
}

extension FunctionInfo {
    init(_ scanner: inout JSONScanner) throws {
        var seen = KeySet()
        var tenant = "", name = "", version = ""
        try scanner.members { key, scanner in
            let at = scanner.offset
            if key.equals("tenant") {
                try seen.insert(0, "tenant", at: at)
                tenant = try scanner.string()
            } else if key.equals("name") {
                try seen.insert(1, "name", at: at)
                name = try scanner.string()
            } else if key.equals("version") {
                try seen.insert(2, "version", at: at)
                version = try scanner.string()
            } else {
                try scanner.skipValue()
            }
        }
        try JSONHeads.require(
            [(seen.contains(0), "function.tenant"), (seen.contains(1), "function.name"),
             (seen.contains(2), "function.version")], at: scanner.offset)
        self.init(tenant: tenant, name: name, version: version)
    }
}

/// What the head readers share.
enum JSONHeads {
    /// Runs `read` over `json`, which must hold exactly one value; any failure is the protocol's "malformed head".
    static func read<Head>(
        _ kind: String, _ json: UnsafeRawBufferPointer, _ read: (inout JSONScanner) throws -> Head
    ) throws(ProtocolError) -> Head {
        do {
            var scanner = JSONScanner(json)
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

    /// `[["name","value"],…]`: arrays of strings.
    static func stringArrays(_ scanner: inout JSONScanner) throws -> [[String]] {
        var arrays: [[String]] = []
        try scanner.elements { scanner in arrays.append(try scanner.strings()) }
        return arrays
    }

    /// An integer that fits `Int`.
    static func int(_ scanner: inout JSONScanner) throws -> Int {
        let at = scanner.offset
        guard let value = Int(exactly: try scanner.integer()) else {
            throw JSONScanner.Failure(message: "the integer does not fit", offset: at)
        }
        return value
    }

    static func require(_ keys: [(present: Bool, name: String)], at offset: Int) throws {
        if let missing = keys.first(where: { !$0.present }) {
            throw JSONScanner.Failure(message: "the key '\(missing.name)' is missing", offset: offset)
        }
    }
}
