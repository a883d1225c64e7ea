import Foundation
import GRDB
import Testing
import VergeCore
import VergeUsage

/// The billing summary adds up exactly what the export returns; records are checked before they are stored.
@Suite struct UsageSummaryTests {
    private func withStore(_ body: (UsageStore) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let pool = try DatabasePool(path: dir + "/control.sqlite")
            var migrator = DatabaseMigrator()
            UsageStore.registerMigrations(&migrator)
            try migrator.migrate(pool)
            try await body(UsageStore(database: pool))
        }
    }

    /// Records over two tenants, three functions, three hours and every status, with varied billing fields.
    private func varied(_ count: Int) -> [UsageRecord] {
        let statuses: [InvocationStatus] = [
            .ok, .ok, .ok, .functionError, .timeout, .crashed, .rejected, .limitExceeded,
        ]
        let hour: Int64 = 3_600_000_000
        let base: Int64 = 1_764_237_600_000_000  // 2025-11-27T10:00:00Z
        return (0..<count).map { i in
            var r = makeRecord(
                i, tenant: i % 3 == 0 ? "beta" : "acme", function: ["a", "b", "c"][i % 3 == 0 ? 0 : i % 2 + 1],
                startTimeUs: base + Int64(i % 3) * hour + Int64(i) * 997, status: statuses[i % statuses.count])
            r.durationUs = Int64(i * 731 % 5_000)
            r.cpuUs = Int64(i * 373 % 4_000)
            r.memoryMB = [128, 256, 1024][i % 3]
            r.memoryPeakBytes = Int64(i) * 1_000_003
            r.responseBytes = Int64(i * 17)
            r.region = i % 2 == 0 ? "eu" : "us"
            if r.status == .limitExceeded { r.limit = "memory" }
            if r.status == .rejected { r.reason = "capacity" }
            return r
        }
    }

    @Test(arguments: [
        [UsageSummaryQuery.Key](), [.tenant], [.tenant, .function, .hour], [.function, .status], [.day, .region],
        [.host, .tenant],
    ])
    func summaryEqualsTheSumOfTheRecords(groupBy: [UsageSummaryQuery.Key]) async throws {
        try await withStore { store in
            let records = varied(500)
            _ = try await store.ingest(records)
            let from: Int64 = 1_764_237_600_000_000
            let to = from + 2 * 3_600_000_000  // leaves out the third hour
            for tenant in [nil, "acme"] as [String?] {
                let summary = try await store.summary(
                    UsageSummaryQuery(fromUs: from, toUs: to, groupBy: groupBy, tenant: tenant))
                // The same sums, computed here from the exported records.
                var all: [UsageRecord] = []
                var cursor: Int64 = 0
                while true {
                    let page = try await store.page(after: cursor, limit: 97, tenant: tenant, function: nil)
                    if page.records.isEmpty { break }
                    all += page.records
                    cursor = page.nextCursor
                }
                var expected: [String: UsageSummaryRow] = [:]
                for r in all where r.startTimeUs >= from && r.startTimeUs < to {
                    let hourStart = r.startTimeUs / 3_600_000_000 * 3_600_000_000
                    let dayStart = r.startTimeUs / 86_400_000_000 * 86_400_000_000
                    var key = UsageSummaryRow()
                    for k in groupBy {
                        switch k {
                        case .tenant: key.tenant = r.tenant
                        case .function: key.function = r.function
                        case .hour: key.hour = UsageSummary.rfc3339(microseconds: hourStart)
                        case .day: key.day = UsageSummary.rfc3339(microseconds: dayStart)
                        case .host: key.host = r.host
                        case .region: key.region = r.region
                        case .status: key.status = r.status.rawValue
                        }
                    }
                    let id =
                        "\(key.tenant ?? "")|\(key.function ?? "")|\(key.hour ?? "")|\(key.day ?? "")|"
                        + "\(key.host ?? "")|\(key.region ?? "")|\(key.status ?? "")"
                    expected[id, default: key].add(r)
                }
                #expect(summary.rows.count == expected.count)
                for row in summary.rows {
                    #expect(expected.values.contains(row), "no records add up to \(row)")
                }
                let totalRequests = summary.rows.reduce(0) { $0 + $1.requests }
                #expect(totalRequests == Int64(all.filter { $0.startTimeUs >= from && $0.startTimeUs < to }.count))
                #expect(totalRequests > 0)
            }
        }
    }

    @Test func summaryOfOneTenantHidesTheOthers() async throws {
        try await withStore { store in
            _ = try await store.ingest(varied(60))
            let summary = try await store.summary(
                UsageSummaryQuery(fromUs: 0, toUs: .max / 2, groupBy: [.tenant], tenant: "beta"))
            #expect(summary.rows.map(\.tenant) == ["beta"])
            #expect(summary.rows[0].requests == 20)
        }
    }

    @Test(arguments: ["tenant,tenant", "colour", "hour,day", "tenant,,function"])
    func badGroupByIsAClearError(text: String) throws {
        let error = #expect(throws: VergeError.self) { try UsageSummaryQuery.parseGroupBy(text) }
        #expect(error?.code == .badRequest)
        #expect(error?.message.contains("group_by") == true)
    }

    @Test func timesParseAsRFC3339OrMicroseconds() throws {
        #expect(try UsageSummaryQuery.parseTime("2025-11-27T10:00:00Z", name: "from") == 1_764_237_600_000_000)
        #expect(try UsageSummaryQuery.parseTime("1764237600000000", name: "from") == 1_764_237_600_000_000)
        #expect(try UsageSummaryQuery.parseTime("2025-11-27T10:00:00.5Z", name: "from") == 1_764_237_600_500_000)
        #expect(throws: VergeError.self) { try UsageSummaryQuery.parseTime("yesterday", name: "from") }
        #expect(UsageSummary.rfc3339(microseconds: 1_764_237_600_000_001) == "2025-11-27T10:00:00.000001Z")
    }

    @Test(arguments: [(0, 0), (1, 1), (999, 1), (1_000, 1), (1_001, 2), (2_500_000, 2_500)] as [(Int64, Int64)])
    func billedDurationRoundsUpToAMillisecond(durationUs: Int64, billedMs: Int64) {
        var record = makeRecord(1)
        record.durationUs = durationUs
        record.memoryMB = 1024
        #expect(record.billedMs == billedMs)
        #expect(record.gbSeconds == Double(billedMs) / 1000)
    }

    @Test func recordJSONCarriesTheDerivedBillingFieldsAndReadsOldRecords() throws {
        var record = makeRecord(3)
        record.memoryMB = 512
        record.cpuUs = 900
        let object = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any])
        #expect(object["billed_ms"] as? Int == 2)
        #expect(object["gb_seconds"] as? Double == 0.001)
        #expect(object["cpu_us"] as? Int == 900)
        #expect(try JSONDecoder().decode(UsageRecord.self, from: JSONEncoder().encode(record)) == record)
        // A record from a host that predates the billing fields.
        let old =
            #"{"invocation_id":"i","tenant":"t","function":"f","version":"v","host":"h","start_time_us":1,"duration_us":5,"queue_us":0,"cold_start":false,"init_us":0,"status":"ok","http_status":200,"request_bytes":1,"response_bytes":2}"#
        let decoded = try JSONDecoder().decode(UsageRecord.self, from: Data(old.utf8))
        #expect(decoded.cpuUs == 0 && decoded.memoryMB == 0 && decoded.region == "" && decoded.billedMs == 1)
    }

    @Test(arguments: [
        ("negative cpu", "cpu_us"), ("huge duration", "duration_us"), ("limit on ok", "limit"),
        ("unknown limit", "limit_exceeded"), ("reason on ok", "reason"), ("long tenant", "tenant"),
        ("control chars", "function"), ("http status", "http_status"), ("warm init", "init_us"),
        ("memory", "memory_mb"),
    ])
    func hostileRecordsAreRefusedWholeBatch(name: String, expected: String) async throws {
        func change(_ r: inout UsageRecord) {
            switch name {
            case "negative cpu": r.cpuUs = -1
            case "huge duration": r.durationUs = 100_000_000_000
            case "limit on ok": r.limit = "memory"
            case "unknown limit":
                r.status = .limitExceeded
                r.limit = "disk"
            case "reason on ok": r.reason = "capacity"
            case "long tenant": r.tenant = String(repeating: "x", count: 300)
            case "control chars": r.function = "a\nb"
            case "http status": r.httpStatus = 42
            case "warm init":
                r.coldStart = false
                r.initUs = 5
            default: r.memoryMB = -5
            }
        }
        try await withStore { store in
            var bad = makeRecord(1)
            change(&bad)
            let error = try await #require(throws: VergeError.self) { try await store.ingest([makeRecord(2), bad]) }
            #expect(error.code == .badRequest)
            #expect(error.message.contains("record 1"), "\(error.message)")
            #expect(error.message.contains(expected), "\(name): \(error.message)")
            #expect(try await store.count(tenant: nil) == 0)
        }
    }
}
