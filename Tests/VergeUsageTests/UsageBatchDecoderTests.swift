import Foundation
import Testing
import VergeCore

/// The control plane's decoder of the shipping format against Foundation's `JSONDecoder`, which it replaces: the
/// same batch from everything hosts send, and a clear refusal of everything else.
@Suite struct UsageBatchDecoderTests {
    /// Texts that exercise the string path: escapes, multi-byte UTF-8, characters JSON encoders escape.
    static let texts = [
        "", "a", "default", "f-1", "é", "日本", "🦀", "quote\"back\\slash/", "tab\tline\nfeed\r", "\u{1}\u{1F}\u{7F}",
        "\u{2028}\u{FEFF}", String(repeating: "a", count: 64), String(repeating: "ü", count: 100),
    ]

    static func randomRecord(_ random: inout SplitMix64, index: Int) -> UsageRecord {
        func text() -> String { texts[Int(random.next() % UInt64(texts.count))] }
        func integer() -> Int64 {
            switch random.next() % 4 {
            case 0: 0
            case 1: Int64(bitPattern: random.next())
            case 2: [Int64.min, Int64.max, -1, 1][Int(random.next() % 4)]
            default: Int64(random.next() % 100_000)
            }
        }
        let status = InvocationStatus.allCases[Int(random.next() % UInt64(InvocationStatus.allCases.count))]
        var record = UsageRecord(
            invocationID: "call-\(index)-" + text(), tenant: text(), function: text(), version: text(), host: text(),
            // Durations bounded so that memory_mb × billed_ms (gb_seconds, which the encoder writes) fits in Int64.
            startTimeUs: integer(), durationUs: Int64(random.next() % 10_000_000_000) - 1000, queueUs: integer(),
            coldStart: random.next() % 2 == 0,
            initUs: integer(), status: status, httpStatus: Int(integer()), requestBytes: integer(),
            responseBytes: integer(), limit: random.next() % 3 == 0 ? text() : nil,
            reason: random.next() % 3 == 0 ? text() : nil)
        record.versionNumber = Int(integer())
        record.region = text()
        record.cpuUs = integer()
        record.memoryPeakBytes = integer()
        // memory_mb × billed_ms is sent as gb_seconds; keep the product within Int64 as real records do.
        record.memoryMB = Int(random.next() % 1_000_000)
        return record
    }

    static func encoders() -> [JSONEncoder] {
        let shipping = JSONEncoder()
        shipping.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let plain = JSONEncoder()
        let pretty = JSONEncoder()
        pretty.outputFormatting = [.prettyPrinted]
        return [shipping, plain, pretty]
    }

    @Test func decodesWhatHostsSendAsJSONDecoderDoes() throws {
        var random = SplitMix64(seed: 9)
        for encoder in Self.encoders() {
            for size in [0, 1, 2, 50, 400] {
                let records = (0..<size).map { Self.randomRecord(&random, index: $0) }
                let body = Array(try encoder.encode(UsageBatch(host: "fra", records: records)))
                let ours = try UsageBatchDecoder.decode(body)
                let foundation = try JSONDecoder().decode(UsageBatch.self, from: Data(body))
                #expect(ours.host == "fra")
                #expect(ours.records == records)
                #expect(ours.records == foundation.records)
            }
        }
    }

    @Test func readsRecordsOfHostsFromBeforeTheBillingFields() throws {
        // The shape of a record before version_number, region, billed_ms, cpu_us, memory_*, gb_seconds and reason;
        // optional fields may also be null.
        let body = """
            { "records" : [ {"cold_start":true,"duration_us":1500,"function":"f","host":"fra","http_status":200,
              "init_us":20,"invocation_id":"a","queue_us":0,"request_bytes":1,"response_bytes":2,
              "start_time_us":1000,"status":"ok","tenant":"t","version":"v"},
              {"cold_start":false,"duration_us":1,"function":"f","host":"fra","http_status":507,"init_us":0,
              "invocation_id":"b","queue_us":0,"request_bytes":1,"response_bytes":2,"start_time_us":1000,
              "status":"limit_exceeded","limit":"memory","reason":null,"region":null,"cpu_us":null,"memory_mb":null,
              "memory_peak_bytes":null,"version_number":null,"billed_ms":null,"gb_seconds":null,"tenant":"t",
              "version":"v"} ], "host" : "fra" }\n
            """
        let ours = try UsageBatchDecoder.decode(Array(body.utf8))
        let foundation = try JSONDecoder().decode(UsageBatch.self, from: Data(body.utf8))
        #expect(ours.records == foundation.records)
        #expect(ours.records.map(\.billedMs) == [2, 1])
        #expect(ours.records[1].limit == "memory" && ours.records[1].reason == nil && ours.records[1].region == "")
    }

    @Test func senderBilledFieldsAreIgnored() throws {
        let body = Self.valid.replacingOccurrences(
            of: #""duration_us":1,"#,
            with: #""duration_us":1500,"billed_ms":999999,"gb_seconds":-1.5e300,"memory_mb":128,"#)
        let decoded = try UsageBatchDecoder.decode(Array(body.utf8))
        #expect(decoded.records[0].billedMs == 2 && decoded.records[0].memoryMBMs == 256)
        let foundation = try JSONDecoder().decode(UsageBatch.self, from: Data(body.utf8))
        #expect(decoded.records == foundation.records)
    }

    static let valid =
        #"{"host":"fra","records":[{"cold_start":false,"duration_us":1,"function":"f","host":"fra","http_status":200,"#
        + #""init_us":0,"invocation_id":"a","queue_us":0,"request_bytes":1,"response_bytes":2,"start_time_us":1000,"#
        + #""status":"ok","tenant":"t","version":"v"}]}"#

    /// Input a hostile or broken sender could send, and what the refusal must say.
    static let hostile: [(String, String)] = [
        ("", "unexpected end of data"),
        ("[]", "the batch must be a JSON object"),
        ("null", "the batch must be a JSON object"),
        (#"{"host":"fra"}"#, "missing key 'records'"),
        (#"{"records":[]}"#, "missing key 'host'"),
        (#"{"host":"fra","records":[],"host":"iad"}"#, "the key 'host' appears twice"),
        (#"{"host":"fra","records":[],"extra":1}"#, "unknown key 'extra'"),
        (#"{"host":"fra","records":{}}"#, "records: expected an array of records"),
        (#"{"host":1,"records":[]}"#, "host: expected a string"),
        (
            valid.replacingOccurrences(of: #""tenant":"t""#, with: #""tenant":"t","tenant":"u""#),
            "records.0.tenant: the key appears twice"
        ),
        (valid.replacingOccurrences(of: #""tenant":"t","#, with: ""), "records.0: missing key 'tenant'"),
        (
            valid.replacingOccurrences(of: #""tenant":"t""#, with: #""tenant":"t","cost":0"#),
            "records.0: unknown key 'cost'"
        ),
        (valid.replacingOccurrences(of: #""tenant":"t""#, with: #""t\u0065nant":"t""#), "records.0: unknown key"),
        (
            valid.replacingOccurrences(of: #""duration_us":1"#, with: #""duration_us":1.0"#),
            "records.0.duration_us: expected an integer, without fraction or exponent"
        ),
        (
            valid.replacingOccurrences(of: #""duration_us":1"#, with: #""duration_us":1e3"#),
            "records.0.duration_us: expected an integer"
        ),
        (
            valid.replacingOccurrences(of: #""duration_us":1"#, with: #""duration_us":01"#),
            "records.0.duration_us: a number may not start with 0"
        ),
        (
            valid.replacingOccurrences(of: #""duration_us":1"#, with: #""duration_us":99999999999999999999"#),
            "records.0.duration_us: the number is out of range"
        ),
        (
            valid.replacingOccurrences(of: #""duration_us":1"#, with: #""duration_us":"1""#),
            "records.0.duration_us: expected an integer"
        ),
        (
            valid.replacingOccurrences(of: #""duration_us":1"#, with: #""duration_us":null"#),
            "records.0.duration_us: expected an integer"
        ),
        (
            valid.replacingOccurrences(of: #""cold_start":false"#, with: #""cold_start":0"#),
            "records.0.cold_start: expected true or false"
        ),
        (
            valid.replacingOccurrences(of: #""status":"ok""#, with: #""status":"free""#),
            "records.0.status: unknown status 'free'"
        ),
        (
            valid.replacingOccurrences(of: #""tenant":"t""#, with: #""tenant":"\ud800""#),
            "records.0.tenant: a lone surrogate escape"
        ),
        (
            valid.replacingOccurrences(of: #""tenant":"t""#, with: #""tenant":"\udc00x""#),
            "records.0.tenant: a lone surrogate escape"
        ),
        (
            valid.replacingOccurrences(of: #""tenant":"t""#, with: #""tenant":"\x""#),
            "records.0.tenant: invalid escape"
        ),
        (
            valid.replacingOccurrences(of: #""tenant":"t""#, with: "\"tenant\":\"a\nb\""),
            "records.0.tenant: a control character must be escaped"
        ),
        (
            valid.replacingOccurrences(of: #""tenant":"t""#, with: #""tenant":["t"]"#),
            "records.0.tenant: expected a string"
        ),
        (
            valid.replacingOccurrences(
                of: #""tenant":"t""#, with: #""tenant":"# + String(repeating: "[", count: 100_000)),
            "records.0.tenant: expected a string"
        ),
        (
            #"{"host":"fra","records":["# + String(repeating: "[", count: 100_000),
            "records.0: a record must be a JSON object"
        ),
        (valid + "x", "unexpected data after the batch"),
        (valid + "{}", "unexpected data after the batch"),
        (valid.replacingOccurrences(of: "}]}", with: "},]}"), "records.1: a record must be a JSON object"),
        (valid.replacingOccurrences(of: "}]}", with: "} ]"), "unexpected end of data"),
        (valid.replacingOccurrences(of: "}]}", with: "} ] ]"), "expected ',' or '}' after a value"),
    ]

    @Test(arguments: hostile)
    func hostileInputIsRefusedNamingThePlace(_ input: String, _ expected: String) throws {
        let error = #expect(throws: VergeError.self) { try UsageBatchDecoder.decode(Array(input.utf8)) }
        #expect(error?.code == .badRequest)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
        #expect(error?.message.hasPrefix("invalid usage batch: ") == true)
    }

    @Test func invalidUTF8IsRefused() throws {
        for bad: [UInt8] in [[0xFF], [0xC3], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80]] {
            var body = Array(Self.valid.utf8)
            let marker = Array(#""tenant":"t""#.utf8)
            let start = body.indices.first { body[$0...].starts(with: marker) }! + marker.count - 2
            body.replaceSubrange(start..<start + 1, with: bad)
            let error = #expect(throws: VergeError.self) { try UsageBatchDecoder.decode(body) }
            #expect(error?.message.contains("records.0.tenant: the string is not valid UTF-8") == true)
            // With an escape in the same string (the other path through the decoder).
            body.insert(contentsOf: Array(#"\n"#.utf8), at: start)
            let escaped = #expect(throws: VergeError.self) { try UsageBatchDecoder.decode(body) }
            #expect(escaped?.message.contains("records.0.tenant: the string is not valid UTF-8") == true)
            #expect(throws: (any Error).self) { try JSONDecoder().decode(UsageBatch.self, from: Data(body)) }
        }
    }

    @Test func everyTruncationIsRefused() throws {
        let body = Array(Self.valid.utf8)
        for end in 0..<body.count {
            #expect(throws: VergeError.self, "prefix of \(end) bytes") {
                try UsageBatchDecoder.decode(Array(body[..<end]))
            }
        }
    }

    /// Random byte changes to valid batches: whatever the decoder accepts, JSONDecoder decodes to the same batch.
    @Test func mutatedInputIsRefusedOrDecodedAsJSONDecoderDoes() throws {
        var random = SplitMix64(seed: 99)
        let alphabet = Array(#"{}[]:,"\/ 0123456789-+.eEtrufalsn\u00ÿ"#.utf8) + [0x00, 0x0A, 0xC3, 0xA9, 0xFF, 0xED]
        var accepted = 0
        for round in 0..<3000 {
            let records = (0..<2).map { Self.randomRecord(&random, index: $0) }
            var body = Array(try Self.encoders()[round % 3].encode(UsageBatch(host: "fra", records: records)))
            for _ in 0...(random.next() % 3) {
                let at = Int(random.next() % UInt64(body.count))
                switch random.next() % 3 {
                case 0: body[at] = alphabet[Int(random.next() % UInt64(alphabet.count))]
                case 1: body.remove(at: at)
                default: body.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: at)
                }
            }
            guard let ours = try? UsageBatchDecoder.decode(body) else { continue }
            accepted += 1
            let foundation = try JSONDecoder().decode(UsageBatch.self, from: Data(body))
            #expect(ours.host == foundation.host && ours.records == foundation.records, "round \(round)")
        }
        // Some mutations keep the batch valid (a digit for a digit, whitespace): the comparison is not vacuous.
        #expect(accepted > 100)
    }
}
