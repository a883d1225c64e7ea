import Foundation
import Testing
import VergeTestSupport

/// Cold starts, warm reuse, scale to zero, crashes, deadlines — seen from outside, with real worker processes.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct PoolLifecycleTests {
    static let paris = (48.85, 2.35)

    @Test func firstCallIsColdSecondIsWarmAndIdleWorkersGoAway() async throws {
        // The idle timeout leaves room to see the warm worker before it goes, also on a loaded machine (a status
        // look spawns the CLI and reads what hosts last reported).
        try await LocalClusterProcess.with(idleTimeout: 8) { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let first = try await TestHTTP.get(cluster.gatewayURL + "/echo", from: Self.paris)
            let second = try await TestHTTP.get(cluster.gatewayURL + "/echo", from: Self.paris)
            #expect(first.status == 200 && second.status == 200)
            #expect(first.headers["server-timing"].joined().contains("cold;dur="))
            #expect(!second.headers["server-timing"].joined().contains("cold;dur="))
            let worker = try #require(try first.json()["worker_id"] as? String)
            #expect(try second.json()["worker_id"] as? String == worker, "the warm call reuses the worker")
            var pids: [Int32] = []
            // Seen alive in the same look: on a slow machine the idle timeout may pass soon after.
            #expect(
                try await eventually {
                    pids = try await cluster.workerPIDs(function: "echo", host: "fra")
                    return pids.count == 1 && pids.allSatisfy { kill($0, 0) == 0 }
                }, "fra reports its one warm worker, alive")

            // After the idle timeout the function is at zero: no worker process at all.
            let scaledToZero = try await eventually(timeout: .seconds(30)) {
                let hosts = try await cluster.verge(["hosts", "--format", "json"])
                let list = try JSONSerialization.jsonObject(with: Data(hosts.stdout.utf8)) as? [[String: Any]] ?? []
                let fra = list.first { $0["name"] as? String == "fra" }
                return fra?["warm_workers"] as? Int == 0 && pids.allSatisfy { kill($0, 0) != 0 }
            }
            #expect(scaledToZero, "fra still has a worker after its idle timeout")

            let third = try await TestHTTP.get(cluster.gatewayURL + "/echo", from: Self.paris)
            #expect(third.status == 200)
            #expect(
                third.headers["server-timing"].joined().contains("cold;dur="), "the call after scale-to-zero is cold")
            #expect(try third.json()["worker_id"] as? String != worker)

            let records = try await usageRecords(cluster, expecting: 3)
            #expect(records.map { $0["cold_start"] as? Bool } == [true, false, true])
            // The other export formats carry the same records.
            let json = try await cluster.verge(["usage", "--format", "json"])
            #expect((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [Any])?.count == 3)
            let csv = try await cluster.verge(["usage", "--format", "csv"]).stdout.split(separator: "\n")
            #expect(csv.count == 4)
            #expect(csv.first?.hasPrefix("invocation_id,tenant,function,version,version_number,host") == true)
        }
    }

    @Test func crashingWorkerGives502AndTheNextCallWorks() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("flaky")).status == 0)
            let warm = try await TestHTTP.get(cluster.gatewayURL + "/flaky", from: Self.paris)
            #expect(warm.status == 200)
            let crashed = try await TestHTTP.get(cluster.gatewayURL + "/flaky?crash=1", from: Self.paris)
            #expect(crashed.status == 502)
            #expect((try crashed.json()["error"] as? [String: Any])?["code"] as? String == "worker_crashed")
            let next = try await TestHTTP.get(cluster.gatewayURL + "/flaky", from: Self.paris)
            #expect(next.status == 200)
            #expect(
                try next.json()["worker_id"] as? String != (try warm.json()["worker_id"] as? String),
                "a new worker replaced the crashed one")
            let records = try await usageRecords(cluster, expecting: 3)
            #expect(records.map { $0["status"] as? String } == ["ok", "crashed", "ok"])
        }
    }

    @Test func slowFunctionGets504AtItsDeadline() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("slow")).status == 0)
            _ = try await TestHTTP.get(cluster.gatewayURL + "/slow?ms=1", from: Self.paris)  // warm it up
            let slow = try await TestHTTP.get(cluster.gatewayURL + "/slow?ms=20000", from: Self.paris)
            #expect(slow.status == 504)
            #expect((try slow.json()["error"] as? [String: Any])?["code"] as? String == "timeout")
            // Manifest timeout is 1000 ms: the answer comes at the deadline, not at the function's leisure.
            #expect(slow.elapsed >= .milliseconds(950))
            #expect(slow.elapsed < .seconds(5))
            let fast = try await TestHTTP.get(cluster.gatewayURL + "/slow?ms=5", from: Self.paris)
            #expect(fast.status == 200)
            let records = try await usageRecords(cluster, expecting: 3)
            #expect(records.map { $0["status"] as? String } == ["ok", "timeout", "ok"], "\(records)")
        }
    }

    /// A cold start longer than the function's timeout is not a full host: the call waits for the worker started
    /// for it, and its timeout counts from when it reaches that worker.
    @Test func aColdStartLongerThanTheTimeoutStillServesItsCall() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("slow-start")).status == 0)
            let fra = try #require(cluster.hostURLs["fra"])
            let first = try await TestHTTP.request(fra + "/slow-start", timeout: .seconds(30))
            #expect(first.status == 200, "\(first.text)")
            #expect(first.text == "started")
            #expect(first.elapsed >= .milliseconds(1500))
            #expect(first.headers["server-timing"].joined().contains("cold;dur="))
            let records = try await usageRecords(cluster, expecting: 1)
            #expect(records.map { $0["status"] as? String } == ["ok"], "\(records)")
            #expect(records.first?["cold_start"] as? Bool == true)
        }
    }

    @Test func functionErrorsAndInitFailuresSayWhatWentWrong() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("error")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("initfail")).status == 0)
            let failed = try await TestHTTP.get(cluster.gatewayURL + "/error", from: Self.paris)
            #expect(failed.status == 500)
            let error = try #require(try failed.json()["error"] as? [String: Any])
            #expect(error["code"] as? String == "function_error")
            #expect((error["message"] as? String)?.contains("ValueError: boom") == true)

            let broken = try await TestHTTP.get(cluster.gatewayURL + "/initfail", from: Self.paris)
            #expect(broken.status == 502)
            let initError = try #require(try broken.json()["error"] as? [String: Any])
            #expect(initError["code"] as? String == "init_failed")
            #expect((initError["message"] as? String)?.contains("RuntimeError") == true)
            let records = try await usageRecords(cluster, expecting: 2)
            #expect(Set(records.compactMap { $0["status"] as? String }) == ["function_error", "init_error"])
        }
    }
}

extension PoolLifecycleTests {
    @Test func workersDyingBeforeReadyFailTheirCallsAndNothingElse() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("dies-at-start")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            for _ in 0..<5 {
                let response = try await TestHTTP.get(cluster.gatewayURL + "/dies-at-start", from: Self.paris)
                #expect(response.status == 502)
                let error = try #require(try response.json()["error"] as? [String: Any])
                #expect(error["code"] as? String == "init_failed")
                #expect((error["message"] as? String)?.contains("exited before it was ready") == true)
            }
            #expect(cluster.process.isRunning, "the cluster survives workers that die while starting")
            #expect(try await TestHTTP.get(cluster.gatewayURL + "/echo", from: Self.paris).status == 200)
        }
    }
}

/// Reads `verge usage --format jsonl` until it holds `count` records (shipping is asynchronous), then checks that
/// no more arrive: every call has exactly one record.
func usageRecords(_ cluster: LocalClusterProcess, expecting count: Int) async throws -> [[String: Any]] {
    var records: [[String: Any]] = []
    let complete = try await eventually(timeout: .seconds(15), every: .milliseconds(100)) {
        let result = try await cluster.verge(["usage", "--format", "jsonl"])
        guard result.status == 0 else { throw TestFailure("verge usage failed: \(result.stderr)") }
        records = try result.stdout.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
        return records.count >= count
    }
    #expect(complete, "expected \(count) usage records, got \(records.count)")
    try await Task.sleep(for: .milliseconds(600))
    let again = try await cluster.verge(["usage", "--format", "jsonl"])
    #expect(again.stdout.split(separator: "\n").count == count, "usage records were doubled or extra ones appeared")
    return records.sorted { ($0["start_time_us"] as? Int ?? 0) < ($1["start_time_us"] as? Int ?? 0) }
}
