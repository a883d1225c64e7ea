import Foundation
import Testing
import VergeCore

/// The hand-written shipping JSON must be what `JSONEncoder` writes with the project's settings (`JSONCoding`: sorted
/// keys, slashes unescaped), so the control plane's decoder takes it unchanged.
@Suite struct UsageWireEncodingTests {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let records: [UsageRecord] = {
        var plain = makeRecord(1)
        plain.versionNumber = 3
        plain.region = "eu-central"
        plain.cpuUs = 812
        plain.memoryPeakBytes = 12_345_678
        plain.memoryMB = 128
        var limited = makeRecord(2, status: .limitExceeded)
        limited.limit = "memory"
        limited.memoryMB = 1
        limited.durationUs = 1
        var rejected = makeRecord(3, status: .rejected)
        rejected.reason = "function_concurrency"
        rejected.durationUs = 0
        rejected.httpStatus = 429
        var hostile = makeRecord(
            4, tenant: "a\"b\\c/d\u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f}\u{7f}e", status: .crashed)
        hostile.function = "héllo-🌍"
        hostile.host = "</script>"
        hostile.region = ""
        var extremes = makeRecord(5, status: .timeout)
        extremes.startTimeUs = .max
        extremes.durationUs = .max
        extremes.queueUs = .min
        extremes.cpuUs = -1
        extremes.memoryMB = 1
        extremes.versionNumber = .min
        extremes.requestBytes = 0
        extremes.responseBytes = 9
        return [plain, limited, rejected, hostile, extremes]
    }()

    @Test(arguments: records)
    func recordMatchesJSONEncoderByteForByte(record: UsageRecord) throws {
        var bytes: [UInt8] = []
        record.appendWireJSON(to: &bytes)
        let expected = try Self.encoder.encode(record)
        #expect(String(decoding: bytes, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        #expect(try JSONDecoder().decode(UsageRecord.self, from: Data(bytes)) == record)
    }

    @Test func batchMatchesJSONEncoderAndDecodes() throws {
        for records in [[], Self.records] {
            let bytes = UsageBatch.wireJSON(host: "fra \"1\"", records: records)
            let expected = try Self.encoder.encode(UsageBatch(host: "fra \"1\"", records: records))
            #expect(String(decoding: bytes, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
            let decoded = try JSONDecoder().decode(UsageBatch.self, from: Data(bytes))
            #expect(decoded.host == "fra \"1\"")
            #expect(decoded.records == records)
        }
    }

    /// `gb_seconds` is the only floating-point field: every shape of its text (integral, tiny, large) must match.
    @Test func gbSecondsMatchesJSONEncoder() throws {
        var record = makeRecord(0)
        let memories = [0, 1, 3, 7, 128, 1024, 3008, 10_240, 1 << 20]
        let durations: [Int64] = [0, 1, 999, 1_000, 1_001, 33_333, 1_000_000, 7_777_777_777, 1 << 50]
        for memory in memories {
            for duration in durations {
                record.memoryMB = memory
                record.durationUs = duration
                var bytes: [UInt8] = []
                record.appendWireJSON(to: &bytes)
                let expected = try Self.encoder.encode(record)
                #expect(
                    String(decoding: bytes, as: UTF8.self) == String(decoding: expected, as: UTF8.self),
                    "memory_mb \(memory), duration_us \(duration)"
                )
            }
        }
    }
}
