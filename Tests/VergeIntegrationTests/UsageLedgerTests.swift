import Foundation
import Synchronization
import Testing
import VergeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The usage ledger as a billing job sees it: every field of a record, measured right; the export, the summary and
/// the billing sample against a live cluster.
@Suite(.serialized, .cluster, .timeLimit(.minutes(5)))
struct UsageLedgerTests {
    /// Every record the control plane holds, through `verge usage export` (JSON lines), once `count` are there.
    static func exported(_ cluster: LocalClusterProcess, atLeast count: Int) async throws -> [[String: Any]] {
        var records: [[String: Any]] = []
        let complete = try await eventually(timeout: .seconds(20), every: .milliseconds(100)) {
            let result = try await cluster.verge(["usage", "export", "--since", "0"])
            guard result.status == 0 else { throw TestFailure("verge usage export failed: \(result.stderr)") }
            records = try result.stdout.split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
            }
            return records.count >= count
        }
        #expect(complete, "expected \(count) usage records, got \(records.count)")
        return records
    }

    static func record(_ id: String?, in records: [[String: Any]]) throws -> [String: Any] {
        let id = try #require(id, "the response has no x-verge-invocation-id")
        return try #require(records.first { $0["invocation_id"] as? String == id }, "no record of \(id)")
    }

    /// The CPU-hungry and memory-hungry fixtures measure themselves; their records agree within 10 %.
    @Test(
        .enabled(
            if: geteuid() == 0, "CPU and memory come from worker cgroups, which need a root host (CI runs as root)"))
    func cpuAndPeakMemoryMatchWhatTheFunctionMeasured() async throws {
        try await LocalClusterProcess.with { cluster in
            for name in ["cpu-hungry", "memory-hungry"] {
                let deploy = try await cluster.deploy(Paths.fixtureFunction(name))
                #expect(deploy.status == 0, "\(deploy.stderr)")
            }
            let fra = try #require(cluster.hostURLs["fra"])
            var calls: [(kind: String, id: String?, measured: Int)] = []
            for ms in [300, 600] {
                let response = try await TestHTTP.request(fra + "/cpu-hungry?ms=\(ms)", timeout: .seconds(90))
                #expect(response.status == 200, "\(response.text)")
                calls.append(
                    ("cpu", response.header("x-verge-invocation-id"), try response.json()["cpu_us"] as? Int ?? 0))
            }
            for mb in [150, 300] {
                let response = try await TestHTTP.request(fra + "/memory-hungry?mb=\(mb)", timeout: .seconds(90))
                #expect(response.status == 200, "\(response.text)")
                calls.append(
                    (
                        "memory", response.header("x-verge-invocation-id"),
                        try response.json()["vm_hwm_bytes"] as? Int ?? 0
                    ))
            }
            let records = try await Self.exported(cluster, atLeast: calls.count)
            for call in calls {
                let record = try Self.record(call.id, in: records)
                let billed =
                    call.kind == "cpu" ? record["cpu_us"] as? Int ?? 0 : record["memory_peak_bytes"] as? Int ?? 0
                #expect(call.measured > 0, "\(call.kind): the function measured nothing")
                let ratio = Double(billed) / Double(max(call.measured, 1))
                #expect(
                    (0.9...1.1).contains(ratio),
                    "\(call.kind): the record says \(billed), the function measured \(call.measured) (ratio \(ratio))")
            }
            // The second memory call held more than the first: the peak is the call's own, not the worker's.
            let memory = calls.filter { $0.kind == "memory" }
            let peaks = try memory.map { try Self.record($0.id, in: records)["memory_peak_bytes"] as? Int ?? 0 }
            #expect(peaks[1] > peaks[0], "peaks of the 150 MiB and the 300 MiB call: \(peaks)")
        }
    }

    /// The fields a billing job needs, as exported (JSON lines and CSV), and a summary equal to the sum of the
    /// records it covers.
    @Test func exportCarriesEveryBillingFieldAndTheSummaryAddsUp() async throws {
        let scratch = try TemporaryDirectory(prefix: "verge-usage-export")
        defer { scratch.remove() }
        let config = scratch.path + "/cluster.json"
        try #"{"hosts":[{"name":"fra","location":{"latitude":50.11,"longitude":8.68},"region":"eu-central"}]}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        try await LocalClusterProcess.with(extraArguments: ["--config", config]) { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("error")).status == 0)
            let fra = try #require(cluster.hostURLs["fra"])
            var ids: [String] = []
            for index in 0..<6 {
                let response = try await TestHTTP.request(
                    fra + (index == 5 ? "/error" : "/echo"), method: .POST,
                    body: Array(repeating: 7, count: 100 * index))
                ids.append(try #require(response.header("x-verge-invocation-id")))
            }
            let records = try await Self.exported(cluster, atLeast: 6)
            #expect(records.count == 6)
            for (index, id) in ids.enumerated() {
                let r = try Self.record(id, in: records)
                #expect(r["version_number"] as? Int == 1)
                #expect((r["version"] as? String)?.count == 64)
                #expect(r["region"] as? String == "eu-central")
                #expect(r["host"] as? String == "fra")
                #expect(r["memory_mb"] as? Int == 128)
                let duration = try #require(r["duration_us"] as? Int)
                let billed = try #require(r["billed_ms"] as? Int)
                #expect(billed == (duration + 999) / 1000)
                #expect(abs((r["gb_seconds"] as? Double ?? -1) - Double(128 * billed) / 1_024_000) < 1e-12)
                #expect(r["request_bytes"] as? Int == 100 * index)
                #expect(r["cold_start"] as? Bool == (index == 0 || index == 5))
                #expect(r["status"] as? String == (index == 5 ? "function_error" : "ok"))
                if r["cold_start"] as? Bool == true { #expect((r["init_us"] as? Int ?? 0) > 0) }
            }

            // Export in two steps through a cursor file: the second step starts where the first stopped.
            let cursorFile = scratch.path + "/cursor"
            let first = try await cluster.verge(["usage", "export", "--cursor-file", cursorFile, "--limit", "4"])
            #expect(first.status == 0, "\(first.stderr)")
            let second = try await cluster.verge(["usage", "export", "--cursor-file", cursorFile, "--format", "csv"])
            #expect(second.status == 0, "\(second.stderr)")
            let csv = second.stdout.split(separator: "\n")
            #expect(csv.first?.hasPrefix("invocation_id,tenant,function,version,version_number,host,region") == true)
            let exportedIDs =
                first.stdout.split(separator: "\n").compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["invocation_id"]
                        as? String
                } + csv.dropFirst().map { String($0.split(separator: ",")[0]) }
            #expect(exportedIDs.sorted() == ids.sorted())
            let third = try await cluster.verge(["usage", "export", "--cursor-file", cursorFile])
            #expect(third.stdout.isEmpty)
            let stderrCursor = try await cluster.verge(["usage", "export", "--since", "0", "--limit", "2"])
            #expect(stderrCursor.stderr.contains("next_cursor: 2"), "\(stderrCursor.stderr)")

            let summary = try await cluster.verge([
                "usage", "summary", "--format", "json", "--from", "0", "--group-by", "tenant,function",
            ])
            #expect(summary.status == 0, "\(summary.stderr)")
            let rows = try #require(
                (try JSONSerialization.jsonObject(with: Data(summary.stdout.utf8)) as? [String: Any])?["rows"]
                    as? [[String: Any]])
            for function in ["echo", "error"] {
                let mine = records.filter { $0["function"] as? String == function }
                let row = try #require(rows.first { $0["function"] as? String == function })
                func sum(_ key: String) -> Int { mine.reduce(0) { $0 + ($1[key] as? Int ?? 0) } }
                #expect(row["requests"] as? Int == mine.count)
                #expect(row["cpu_us"] as? Int == sum("cpu_us"))
                #expect(row["init_us"] as? Int == sum("init_us"))
                #expect(row["egress_bytes"] as? Int == sum("response_bytes"))
                #expect(row["ingress_bytes"] as? Int == sum("request_bytes"))
                #expect(row["memory_mb_ms"] as? Int == mine.reduce(0) { $0 + 128 * ($1["billed_ms"] as? Int ?? 0) })
            }
            let table = try await cluster.verge(["usage", "summary", "--from", "0"])
            #expect(table.status == 0 && table.stdout.contains("REQUESTS") && table.stdout.contains("echo"))
        }
    }

    /// `Samples/billing/bill.py` against a live cluster: two tenants, two runs with calls in between; every call is
    /// billed once, and a third run with nothing new bills nothing.
    @Test func billingSampleBillsEveryCallExactlyOnce() async throws {
        let scratch = try TemporaryDirectory(prefix: "verge-billing")
        defer { scratch.remove() }
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.verge(["tenants", "create", "acme"]).status == 0)
            let created = try await cluster.verge(["tokens", "create", "--tenant", "acme", "--scope", "deploy"])
            let acme = ["VERGE_TOKEN": created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)]
            #expect(try await cluster.verge(["deploy", Paths.fixtureFunction("echo")], environment: acme).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let fra = try #require(cluster.hostURLs["fra"])
            func call(_ tenant: String, times: Int) async throws {
                for _ in 0..<times {
                    // acme's function by its host name through the gateway; the default tenant's at the host.
                    let response =
                        tenant == "acme"
                        ? try await TestHTTP.request(
                            cluster.gatewayURL + "/", headers: [("host", "echo.acme.localhost")])
                        : try await TestHTTP.get(fra + "/echo")
                    #expect(response.status == 200, "\(response.text)")
                }
            }
            func bill() async throws -> [String: Any] {
                let result = try await CommandRunner.run(
                    "/usr/bin/python3",
                    [
                        Paths.repository + "/Samples/billing/bill.py", "--api", cluster.apiURL, "--prices",
                        Paths.repository + "/Samples/billing/prices.json", "--state", scratch.path + "/state", "--json",
                    ],
                    environment: ["VERGE_TOKEN": try cluster.adminToken()])
                #expect(result.status == 0, "\(result.stderr)")
                return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            }
            func requests(_ run: [String: Any]) -> [String: Int] {
                var byTenant: [String: Int] = [:]
                for invoice in run["invoices"] as? [[String: Any]] ?? [] {
                    byTenant[invoice["tenant"] as? String ?? "?"] = invoice["requests"] as? Int
                }
                return byTenant
            }

            try await call("acme", times: 3)
            try await call("default", times: 2)
            _ = try await Self.exported(cluster, atLeast: 5)
            let first = try await bill()
            #expect(requests(first) == ["acme": 3, "default": 2])
            let invoices = first["invoices"] as? [[String: Any]] ?? []
            #expect(invoices.allSatisfy { Double($0["total"] as? String ?? "") ?? 0 > 0 })

            try await call("acme", times: 4)
            _ = try await Self.exported(cluster, atLeast: 9)
            let second = try await bill()
            #expect(requests(second) == ["acme": 4])
            let third = try await bill()
            #expect(requests(third).isEmpty)
            #expect(third["from_cursor"] as? Int == second["to_cursor"] as? Int)
        }
    }
}
