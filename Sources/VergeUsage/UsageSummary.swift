import Foundation
import VergeCore

/// What ``UsageStore/summary(_:)`` adds up: the records that started in `[fromUs, toUs)`, grouped by `groupBy`.
public struct UsageSummaryQuery: Sendable, Equatable {
    /// What a summary row can be keyed by.
    public enum Key: String, Sendable, CaseIterable, Codable {
        case tenant, function, hour, day, host, region, status
    }

    /// Inclusive start, µs since the Unix epoch.
    public var fromUs: Int64
    /// Exclusive end, µs since the Unix epoch.
    public var toUs: Int64
    public var groupBy: [Key]
    /// Only this tenant's records; nil for every tenant.
    public var tenant: String?

    public init(fromUs: Int64, toUs: Int64, groupBy: [Key], tenant: String?) {
        self.fromUs = fromUs
        self.toUs = toUs
        self.groupBy = groupBy
        self.tenant = tenant
    }

    /// Parses `group_by=tenant,function,hour`: known keys, each at most once; empty means one total row.
    public static func parseGroupBy(_ text: String?) throws(VergeError) -> [Key] {
        guard let text, !text.isEmpty else { return [] }
        var keys: [Key] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let key = Key(rawValue: String(part)) else {
                throw VergeError(
                    .badRequest,
                    "group_by: unknown key '\(part.prefix(32))'; use any of "
                        + Key.allCases.map(\.rawValue).joined(separator: ", "))
            }
            guard !keys.contains(key) else { throw VergeError(.badRequest, "group_by names '\(key.rawValue)' twice") }
            keys.append(key)
        }
        if keys.contains(.hour) && keys.contains(.day) {
            throw VergeError(.badRequest, "group_by: use hour or day, not both")
        }
        return keys
    }

    /// Parses a time bound: RFC 3339 (`2026-11-27T10:00:00Z`) or an integer of microseconds since the epoch.
    public static func parseTime(_ text: String, name: String) throws(VergeError) -> Int64 {
        if let micros = Int64(text), micros >= 0 { return micros }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        var date = formatter.date(from: text)
        if date == nil {
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            date = formatter.date(from: text)
        }
        guard let date, date.timeIntervalSince1970 >= 0 else {
            throw VergeError(
                .badRequest,
                "\(name) must be an RFC 3339 time (2026-11-27T10:00:00Z) or microseconds since the epoch, got '\(text.prefix(64))'"
            )
        }
        return Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
    }
}

/// One row of a usage summary: the keys it is grouped by (others absent) and the sums of its records.
public struct UsageSummaryRow: Codable, Sendable, Equatable {
    public var tenant: String?
    public var function: String?
    /// Start of the hour (or day) as RFC 3339, UTC.
    public var hour: String?
    public var day: String?
    public var host: String?
    public var region: String?
    public var status: String?
    /// Number of records (calls, including refused ones).
    public var requests: Int64
    /// Sum of billed durations, ms.
    public var billedMs: Int64
    /// Sum of configured memory × billed duration, MiB·ms (exact; `gb_seconds` is this / 1,024,000).
    public var memoryMBMs: Int64
    public var gbSeconds: Double
    /// Sum of active CPU time, µs (exact; `cpu_ms` is this / 1000).
    public var cpuUs: Int64
    public var cpuMs: Double
    /// Sum of cold-start init time, µs (exact; `init_ms` is this / 1000).
    public var initUs: Int64
    public var initMs: Double
    /// Sum of response bytes (egress).
    public var egressBytes: Int64
    /// Sum of request bytes (ingress).
    public var ingressBytes: Int64
    /// Number of records per status (`ok`, `function_error`, …); only statuses that occur.
    public var byStatus: [String: Int64]

    enum CodingKeys: String, CodingKey {
        case tenant, function, hour, day, host, region, status, requests
        case billedMs = "billed_ms"
        case memoryMBMs = "memory_mb_ms"
        case gbSeconds = "gb_seconds"
        case cpuUs = "cpu_us"
        case cpuMs = "cpu_ms"
        case initUs = "init_us"
        case initMs = "init_ms"
        case egressBytes = "egress_bytes"
        case ingressBytes = "ingress_bytes"
        case byStatus = "by_status"
    }

    public init(
        tenant: String? = nil, function: String? = nil, hour: String? = nil, day: String? = nil, host: String? = nil,
        region: String? = nil, status: String? = nil
    ) {
        self.tenant = tenant
        self.function = function
        self.hour = hour
        self.day = day
        self.host = host
        self.region = region
        self.status = status
        requests = 0
        billedMs = 0
        memoryMBMs = 0
        gbSeconds = 0
        cpuUs = 0
        cpuMs = 0
        initUs = 0
        initMs = 0
        egressBytes = 0
        ingressBytes = 0
        byStatus = [:]
    }

    /// Adds a record, as the store's SQL does; for tests and clients that sum records themselves.
    public mutating func add(_ record: UsageRecord) {
        requests += 1
        billedMs += record.billedMs
        memoryMBMs += record.memoryMBMs
        cpuUs += record.cpuUs
        initUs += record.initUs
        egressBytes += record.responseBytes
        ingressBytes += record.requestBytes
        byStatus[record.status.rawValue, default: 0] += 1
        updateDerived()
    }

    mutating func updateDerived() {
        gbSeconds = UsageRecord.gbSeconds(memoryMBMs: memoryMBMs)
        cpuMs = Double(cpuUs) / 1000
        initMs = Double(initUs) / 1000
    }
}

/// The answer of `GET /v1/usage/summary`.
public struct UsageSummary: Codable, Sendable, Equatable {
    public var from: String
    public var to: String
    public var groupBy: [UsageSummaryQuery.Key]
    public var rows: [UsageSummaryRow]

    enum CodingKeys: String, CodingKey {
        case from, to
        case groupBy = "group_by"
        case rows
    }

    public init(from: String, to: String, groupBy: [UsageSummaryQuery.Key], rows: [UsageSummaryRow]) {
        self.from = from
        self.to = to
        self.groupBy = groupBy
        self.rows = rows
    }

    /// RFC 3339 in UTC with microseconds when they are not zero.
    public static func rfc3339(microseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let seconds = microseconds / 1_000_000
        let text = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        let fraction = microseconds % 1_000_000
        guard fraction != 0 else { return text }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 6 - digits.count) + digits
        return String(text.dropLast()) + "." + digits + "Z"
    }
}
