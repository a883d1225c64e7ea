import Foundation
import Testing
import VergeTestSupport

/// Host capacity, fairness between functions, min_instances, pre-warm and scale to zero — seen from outside, with
/// real worker processes, straight at the `fra` host so no routing choice blurs what one host does.
@Suite(.serialized, .cluster, .timeLimit(.minutes(3)))
struct AdmissionTests {
    static func errorCode(_ response: TestResponse) -> String? {
        (try? response.json()["error"] as? [String: Any])?["code"] as? String
    }

    @Test func aHostAtCapacityServesWhatFitsQueuesBoundedAndAnswers503WithRetryAfterNever502() async throws {
        try await LocalClusterProcess.with(extraArguments: ["--max-workers", "2", "--max-queued-calls", "1"]) {
            cluster in
            let fra = try #require(cluster.hostURLs["fra"])
            #expect(try await cluster.deploy(Paths.fixtureFunction("hold")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("slow")).status == 0)
            try await waitUntilListed(cluster, ["hold", "slow"])

            // Two calls fill the host's two workers.
            async let first = TestHTTP.get(fra + "/hold?ms=12000")
            async let second = TestHTTP.get(fra + "/hold?ms=12000")
            let full = try await eventually(timeout: .seconds(10)) {
                try await functionStatus(cluster, "hold")?["busy_workers"] as? Int == 2
            }
            #expect(full, "two hold calls should run at once")

            // A third waits in hold's queue (bound 1) for host capacity; a fourth finds that queue full: 503 now.
            async let third = TestHTTP.get(fra + "/hold?ms=10")
            let queued = try await eventually(timeout: .seconds(10)) {
                try await functionStatus(cluster, "hold")?["queued_calls"] as? Int == 1
            }
            #expect(queued, "the third call should wait in the queue")
            let fourth = try await TestHTTP.get(fra + "/hold?ms=10")
            #expect(fourth.status == 503)
            #expect(Self.errorCode(fourth) == "overloaded")
            #expect(fourth.header("retry-after") == "1")
            #expect(fourth.header("x-verge-rejected") == "overloaded", "the host marks its own refusal")
            #expect(fourth.elapsed < .seconds(1), "a full queue answers at once")

            // Another function gets no room either: it waits until its deadline (1 s), then 503 with Retry-After.
            let other = try await TestHTTP.get(fra + "/slow?ms=1")
            #expect(other.status == 503)
            #expect(Self.errorCode(other) == "overloaded")
            #expect(other.header("retry-after") == "1")
            #expect(other.elapsed >= .milliseconds(950), "the call waited for its deadline")
            #expect(other.elapsed < .seconds(3))

            // The calls that fit, and the one that queued, are served once room frees.
            let served = try await [first, second, third]
            #expect(served.map(\.status) == [200, 200, 200])

            let records = try await usageRecords(cluster, expecting: 5)
            let statuses = records.map { "\($0["function"] as? String ?? "")=\($0["status"] as? String ?? "")" }
            #expect(statuses.sorted() == ["hold=ok", "hold=ok", "hold=ok", "hold=rejected", "slow=rejected"])
            #expect(records.allSatisfy { ($0["http_status"] as? Int).map { $0 != 502 } ?? false })
        }
    }

    @Test func aFunctionAtItsMaxWorkersWithAFullQueueAnswers429WithRetryAfter() async throws {
        try await LocalClusterProcess.with(extraArguments: ["--max-queued-calls", "1"]) { cluster in
            let fra = try #require(cluster.hostURLs["fra"])
            #expect(try await cluster.deploy(Paths.fixtureFunction("hold")).status == 0)
            try await waitUntilListed(cluster, ["hold"])
            async let a = TestHTTP.get(fra + "/hold?ms=5000")
            async let b = TestHTTP.get(fra + "/hold?ms=5000")
            async let c = TestHTTP.get(fra + "/hold?ms=5000")
            let busy = try await eventually(timeout: .seconds(10)) {
                try await functionStatus(cluster, "hold")?["busy_workers"] as? Int == 3
            }
            #expect(busy, "hold runs its max_workers (3)")
            async let d = TestHTTP.get(fra + "/hold?ms=10")
            let queued = try await eventually(timeout: .seconds(10)) {
                try await functionStatus(cluster, "hold")?["queued_calls"] as? Int == 1
            }
            #expect(queued)
            let refused = try await TestHTTP.get(fra + "/hold?ms=10")
            #expect(refused.status == 429)
            #expect(Self.errorCode(refused) == "too_many_requests")
            #expect(refused.header("retry-after") == "1")
            let message = (try refused.json()["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("max_workers"))
            #expect(try await [a, b, c, d].map(\.status) == [200, 200, 200, 200])
        }
    }

    @Test func aFunctionLargerThanTheHostGets503NamingTheSettingNot502() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let bundle = try scratch.copy(Paths.fixtureFunction("echo"), as: "big")
        try #"{"name":"big","runtime":"python","entry":"main.py","memory_mb":512}"#.write(
            toFile: bundle + "/verge.json", atomically: true, encoding: .utf8)
        try await LocalClusterProcess.with(extraArguments: ["--max-memory-mb", "256"]) { cluster in
            let fra = try #require(cluster.hostURLs["fra"])
            #expect(try await cluster.deploy(bundle).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            try await waitUntilListed(cluster, ["big", "echo"])
            let big = try await TestHTTP.get(fra + "/big")
            #expect(big.status == 503)
            #expect(Self.errorCode(big) == "overloaded")
            let message = (try big.json()["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("512 MB") && message.contains("max_memory_mb"), "\(message)")
            #expect(big.elapsed < .seconds(2), "it can never fit: no waiting")
            #expect(try await TestHTTP.get(fra + "/echo").status == 200, "smaller functions still run")
            #expect(cluster.log.contains("more memory per worker than the host's capacity"))
        }
    }

    @Test func aFloodingFunctionDoesNotStarveAnother() async throws {
        try await LocalClusterProcess.with(extraArguments: ["--max-workers", "2"]) { cluster in
            let fra = try #require(cluster.hostURLs["fra"])
            #expect(try await cluster.deploy(Paths.fixtureFunction("hold")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            try await waitUntilListed(cluster, ["hold", "echo"])

            let flooding = Flag()
            let floodStatuses = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        var statuses: [Int] = []
                        while !flooding.isSet {
                            statuses.append(try await TestHTTP.get(fra + "/hold?ms=300").status)
                        }
                        return statuses
                    }
                }
                // The flood holds every worker of the host; the other function keeps getting its turn.
                let hot = try await eventually(timeout: .seconds(10)) {
                    try await functionStatus(cluster, "hold")?["busy_workers"] as? Int == 2
                }
                #expect(hot, "the flood should hold both workers")
                for _ in 0..<4 {
                    let call = try await TestHTTP.get(fra + "/echo")
                    #expect(call.status == 200, "the other function was starved: \(call.status) \(call.text)")
                    #expect(call.elapsed < .seconds(5))
                }
                flooding.set()
                var all: [Int] = []
                for try await statuses in group { all += statuses }
                return all
            }
            #expect(!floodStatuses.isEmpty)
            #expect(!floodStatuses.contains(502), "capacity never produces a 502")
            #expect(Set(floodStatuses).isSubset(of: [200, 503]), "\(Set(floodStatuses))")
        }
    }

    @Test func minInstancesKeepsAWorkerWarmAfterTheIdleTimeoutWhileOthersScaleToZero() async throws {
        try await LocalClusterProcess.with(idleTimeout: 1) { cluster in
            let fra = try #require(cluster.hostURLs["fra"])
            #expect(try await cluster.deploy(Paths.fixtureFunction("warm")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            try await waitUntilListed(cluster, ["warm", "echo"])

            let warm = try await TestHTTP.get(fra + "/warm")
            let echo = try await TestHTTP.get(fra + "/echo")
            #expect(warm.status == 200 && echo.status == 200)
            let warmWorker = try #require(try warm.json()["worker_id"] as? String)
            var warmPIDs: [Int] = []
            #expect(
                try await eventually {
                    warmPIDs = try await functionStatus(cluster, "warm")?["worker_pids"] as? [Int] ?? []
                    return warmPIDs.count == 1
                }, "fra reports warm's worker")

            // Both have the same 1 s idle timeout: echo goes to zero, warm keeps its one worker.
            let echoAtZero = try await eventually(timeout: .seconds(15)) {
                try await functionStatus(cluster, "echo")?["worker_pids"] as? [Int] == []
            }
            #expect(echoAtZero, "echo should scale to zero after its idle timeout")
            #expect(
                try await functionStatus(cluster, "warm")?["worker_pids"] as? [Int] == warmPIDs,
                "min_instances 1 keeps the worker")
            #expect(warmPIDs.allSatisfy { kill(pid_t($0), 0) == 0 })

            let again = try await TestHTTP.get(fra + "/warm")
            #expect(again.status == 200)
            #expect(try again.json()["worker_id"] as? String == warmWorker)
            #expect(!again.headers["server-timing"].joined().contains("cold;dur="), "the kept worker is warm")
        }
    }

    @Test func prewarmStartsAWorkerOnDeployAndAFunctionAtZeroHasNoProcess() async throws {
        try await LocalClusterProcess.with { cluster in
            let fra = try #require(cluster.hostURLs["fra"])
            #expect(try await cluster.deploy(Paths.fixtureFunction("prewarmed")).status == 0)
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            try await waitUntilListed(cluster, ["prewarmed", "echo"])

            var prewarmedPIDs: [Int] = []
            let started = try await eventually(timeout: .seconds(10)) {
                prewarmedPIDs = try await functionStatus(cluster, "prewarmed")?["worker_pids"] as? [Int] ?? []
                return prewarmedPIDs.count == 1
            }
            #expect(started, "prewarm starts one worker on deploy, before any call")
            let pid = try #require(prewarmedPIDs.first)
            #expect(kill(pid_t(pid), 0) == 0)
            // echo has not been called: it has no worker at all.
            #expect(try await functionStatus(cluster, "echo")?["worker_pids"] as? [Int] == [])
            #expect(try await functionStatus(cluster, "echo")?["warm_workers"] as? Int == 0)

            let first = try await TestHTTP.get(fra + "/prewarmed")
            #expect(first.status == 200)
            #expect(
                try await functionStatus(cluster, "prewarmed")?["worker_pids"] as? [Int] == [pid],
                "the first call uses the pre-warmed worker")
            #expect(!first.headers["server-timing"].joined().contains("cold;dur="), "and is not a cold start")
            let records = try await usageRecords(cluster, expecting: 1)
            #expect(records.first?["cold_start"] as? Bool == false)
        }
    }
}

/// A flag one task sets and others read.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// What host `host` last reported (through the control plane) about `function`, or `nil` if it does not list it.
func functionStatus(
    _ cluster: LocalClusterProcess, _ function: String, host: String = "fra"
) async throws -> [String: Any]? {
    let result = try await cluster.verge(["hosts", "--format", "json"])
    guard result.status == 0 else { throw TestFailure("verge hosts failed: \(result.stderr)") }
    let hosts = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
    let entry = hosts.first { $0["name"] as? String == host }
    let functions = entry?["functions"] as? [[String: Any]] ?? []
    return functions.first { $0["name"] as? String == function }
}

/// Waits until `fra` lists every function in `names` (deploys reach hosts at their next sync).
func waitUntilListed(_ cluster: LocalClusterProcess, _ names: [String]) async throws {
    let listed = try await eventually(timeout: .seconds(15)) {
        for name in names where try await functionStatus(cluster, name) == nil { return false }
        return true
    }
    try #require(listed, "fra never listed \(names)")
}
