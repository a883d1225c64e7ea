import Foundation
import Testing
import VergeTestSupport

/// What a developer does with the CLI: deploy (and be told clearly when a bundle is wrong), list, roll back,
/// read logs and usage, stop the cluster.
@Suite(.serialized, .cluster, .timeLimit(.minutes(5)))
struct DeveloperWorkflowTests {
    @Test func badBundlesAreRejectedWithAClearErrorAndNothingIsDeployed() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        try await LocalClusterProcess.with { cluster in
            let cases: [(manifest: String, expected: String)] = [
                (#"{"name":"bad","runtime":"python","entry":"main.py","colour":"red"}"#, "colour"),
                (#"{"name":"bad","runtime":"python","entry":"main.py","timeout_ms":0}"#, "timeout_ms"),
                (#"{"name":"bad","runtime":"cobol","entry":"main.py"}"#, "runtime"),
                (#"{"name":"bad","runtime":"python","entry":"missing.py"}"#, "missing.py"),
                (#"{"name":"bad","runtime":"python","entry":"../main.py"}"#, "entry"),
                (#"{"name":"bad","runtime":"python","entry":"main.py","min_instances":5}"#, "min_instances"),
                (#"{"name":"bad","runtime":"python","entry":"main.py","prewarm":"yes"}"#, "prewarm"),
                (#"{"name":"bad","runtime":"python""#, "verge.json"),
            ]
            for (index, testCase) in cases.enumerated() {
                let directory = scratch.path + "/bad\(index)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try testCase.manifest.write(toFile: directory + "/verge.json", atomically: true, encoding: .utf8)
                try "def handle(request):\n    return 'x'\n".write(
                    toFile: directory + "/main.py", atomically: true, encoding: .utf8)
                let result = try await cluster.deploy(directory)
                #expect(result.status != 0, "deploy of \(testCase.manifest) should fail")
                #expect(result.stderr.contains("error:"), "\(result.stderr)")
                #expect(
                    result.stderr.contains(testCase.expected),
                    "error for \(testCase.manifest) should name \(testCase.expected): \(result.stderr)")
            }
            let functions = try await cluster.verge(["functions", "--format", "json"])
            #expect(functions.status == 0)
            #expect(
                try JSONSerialization.jsonObject(with: Data(functions.stdout.utf8)) as? [Any] == nil
                    || functions.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]"
                    || functions.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        }
    }

    @Test func missingDirectoryAndUnreachableControlPlaneAreClearErrors() async throws {
        let missing = try await CommandRunner.verge(["deploy", "/nonexistent/fn", "--api", "http://127.0.0.1:1"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no verge.json"))
        let unreachable = try await CommandRunner.verge([
            "deploy", Paths.sampleFunction("hello"), "--api", "http://127.0.0.1:1",
        ])
        #expect(unreachable.status != 0)
        #expect(unreachable.stderr.contains("cannot reach the control plane"))
    }

    @Test(arguments: [
        (#"{"hosts":[{"name":"fra","location":{"latitude":50,"longitude":8}}],"colour":1}"#, "unknown key 'colour'"),
        (
            #"{"hosts":[{"name":"fra","location":{"latitude":50,"longitude":8}},{"name":"fra","location":{"latitude":1,"longitude":1}}]}"#,
            "appears twice"
        ),
        (#"{"hosts":[{"name":"Fra!","location":{"latitude":50,"longitude":8}}]}"#, "is invalid"),
        (#"{"hosts":[{"name":"fra","location":{"latitude":95,"longitude":8}}]}"#, "out of range"),
        (#"{"trusted_proxies":["10.0.0.0/33"]}"#, "trusted_proxies"),
        (#"{"hosts":[]}"#, "at least one host"),
        (#"{"gateway":"localhost"}"#, "HOST:PORT"),
        (#"{"idle_timeout_s":-1}"#, "idle_timeout_s"),
        (#"{"max_workers":0}"#, "max_workers must be between 1 and 100000, got 0"),
        (#"{"max_memory_mb":8}"#, "max_memory_mb must be between 16 and 16777216, got 8"),
        (#"{"max_queued_calls":-1}"#, "max_queued_calls must be between 0 and 100000, got -1"),
        (#"{"host_event_loops":0}"#, "host_event_loops must be between 1 and 256, got 0"),
        (#"{"init_timeout_s":0}"#, "init_timeout_s must be between 0.1 and 600"),
    ])
    func badClusterConfigsAreRefusedBeforeAnythingStarts(config: String, expected: String) async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/cluster.json"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await CommandRunner.verge(
            [
                "dev", "--config", path, "--data", scratch.path + "/data", "--gateway", "127.0.0.1:0", "--api",
                "127.0.0.1:0",
            ],
            timeout: .seconds(30)
        )
        #expect(result.status != 0)
        #expect(result.stderr.contains(expected), "expected '\(expected)' in: \(result.stderr)")
        #expect(!result.stdout.contains("ready"))
    }

    @Test func versionsAndRollback() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        try await LocalClusterProcess.with { cluster in
            let first = try scratch.copy(Paths.sampleFunction("hello"), as: "v1")
            let second = try scratch.copy(Paths.sampleFunction("hello"), as: "v2")
            let manifestPath = second + "/verge.json"
            let manifest = try String(contentsOfFile: manifestPath, encoding: .utf8)
            try manifest.replacingOccurrences(of: "\"Hello\"", with: "\"Bonjour\"").write(
                toFile: manifestPath, atomically: true, encoding: .utf8)

            #expect(try await cluster.deploy(first).status == 0)
            let v2 = try await cluster.deploy(second)
            #expect(v2.status == 0, "\(v2.stderr)")
            #expect(v2.stdout.contains("version 2"))
            #expect(try await TestHTTP.get(cluster.gatewayURL + "/hello").text.hasPrefix("Bonjour"))

            // Deploying identical content again is the same version, not a new one.
            let again = try await cluster.deploy(second)
            #expect(again.stdout.contains("Version 2 of hello"))

            let rollback = try await cluster.verge(["rollback", "hello"])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            #expect(rollback.stdout.contains("version 1"))
            let rolledBack = try await eventually(timeout: .seconds(10)) {
                try await TestHTTP.get(cluster.gatewayURL + "/hello").text.hasPrefix("Hello")
            }
            #expect(rolledBack)

            let versions = try await cluster.verge(["versions", "hello", "--format", "json"])
            let list = try JSONSerialization.jsonObject(with: Data(versions.stdout.utf8)) as? [[String: Any]] ?? []
            #expect(list.count == 2)
            #expect(list.first { $0["live"] as? Bool == true }?["number"] as? Int == 1)

            let noSuch = try await cluster.verge(["rollback", "hello", "--to", "9"])
            #expect(noSuch.status != 0)
            #expect(noSuch.stderr.contains("no version '9'"))
        }
    }

    @Test func logsAreTaggedWithTheInvocation() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("logs")).status == 0)
            let response = try await TestHTTP.get(cluster.gatewayURL + "/logs")
            let id = try #require(response.header("x-verge-invocation-id"))
            let found = try await eventually(timeout: .seconds(10)) {
                let logs = try await cluster.verge(["logs", "logs", "--invocation", id, "--format", "jsonl"])
                return logs.stdout.contains("log line for \(id)") && logs.stdout.contains("\"invocation_id\":\"\(id)\"")
            }
            #expect(found)
        }
    }

    @Test func hostsReportsLocationsAndWarmWorkers() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            _ = try await TestHTTP.get(cluster.gatewayURL + "/echo", from: (1.35, 103.82))
            let warm = try await eventually {
                let result = try await cluster.verge(["hosts", "--format", "json"])
                let hosts = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
                #expect(Set(hosts.compactMap { $0["name"] as? String }) == ["fra", "iad", "sin"])
                let counts = Dictionary(
                    uniqueKeysWithValues: hosts.map { ($0["name"] as? String ?? "", $0["warm_workers"] as? Int ?? -1) })
                return counts == ["fra": 0, "iad": 0, "sin": 1]
            }
            #expect(warm)
        }
    }

    @Test func concurrentCallsGrowThePoolUpToItsLimitAndAllSucceed() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        try await LocalClusterProcess.with { cluster in
            let slow = try scratch.copy(Paths.fixtureFunction("slow"), as: "slow")
            // A generous timeout: on a busy machine a call may wait seconds for one of the three workers to start,
            // and a call that waited too long would be answered 503 (then the gateway would spill it to another
            // host): straight at fra, and with time to wait, every call is fra's.
            try #"{"name":"slow","runtime":"python","entry":"main.py","timeout_ms":30000,"max_workers":3}"#
                .write(toFile: slow + "/verge.json", atomically: true, encoding: .utf8)
            #expect(try await cluster.deploy(slow).status == 0)
            let fra = try #require(cluster.hostURLs["fra"])
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask { try await TestHTTP.request(fra + "/slow?ms=300", timeout: .seconds(60)).status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 8))
            let result = try await cluster.verge(["hosts", "--format", "json"])
            let hosts = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
            let fraStatus = try #require(hosts.first { $0["name"] as? String == "fra" })
            #expect(fraStatus["warm_workers"] as? Int == 3, "the pool grows to max_workers and no further")
            let records = try await usageRecords(cluster, expecting: 8)
            #expect(
                records.filter { $0["cold_start"] as? Bool == true }.count == 3,
                "\(records.map { "\($0["host"] ?? "?") \($0["status"] ?? "?") cold=\($0["cold_start"] ?? "?")" })")
        }
    }

    /// A host with several event loops: calls arrive on connections of different loops, prefer workers on their own
    /// loop and hand freed workers across loops when none waits on the worker's loop. Every call is answered once and
    /// recorded once, and the pool stays within `max_workers`.
    @Test func callsOnSeveralEventLoopsAreEachServedAndRecordedOnce() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        let config = scratch.path + "/cluster.json"
        try Data(#"{"host_event_loops": 3}"#.utf8).write(to: URL(fileURLWithPath: config))
        try await LocalClusterProcess.with(extraArguments: ["--config", config]) { cluster in
            let slow = try scratch.copy(Paths.fixtureFunction("slow"), as: "slow")
            try #"{"name":"slow","runtime":"python","entry":"main.py","timeout_ms":5000,"max_workers":2}"#
                .write(toFile: slow + "/verge.json", atomically: true, encoding: .utf8)
            #expect(try await cluster.deploy(slow).status == 0)
            let fra = try #require(cluster.hostURLs["fra"])
            // Six keep-alive connections (the host spreads them over its loops), five calls each, all at once: more
            // calls than workers, so freed workers are handed to calls waiting on every loop.
            let ids = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        let connection = try RawHTTPConnection(url: fra)
                        var ids: [String] = []
                        for _ in 0..<5 {
                            try connection.send("GET /slow?ms=20 HTTP/1.1\r\nHost: fra\r\n\r\n")
                            let response = try await connection.readResponse()
                            #expect(response.status == 200, "\(response)")
                            ids.append(response.header("x-verge-invocation-id") ?? "")
                        }
                        return ids
                    }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(ids.count == 30 && Set(ids).count == 30 && !ids.contains(""), "invocation ids: \(ids)")
            let records = try await usageRecords(cluster, expecting: 30)
            #expect(Set(records.compactMap { $0["invocation_id"] as? String }) == Set(ids))
            #expect(records.allSatisfy { $0["status"] as? String == "ok" })
            let warm = try await cluster.workerPIDs(function: "slow", host: "fra")
            #expect((1...2).contains(warm.count), "max_workers is 2: \(warm)")
        }
    }

    @Test func redeployingWhileCallsQueueFailsNoCall() async throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.remove() }
        try await LocalClusterProcess.with { cluster in
            let v1 = try scratch.copy(Paths.fixtureFunction("slow"), as: "v1")
            let v2 = try scratch.copy(Paths.fixtureFunction("slow"), as: "v2")
            try #"{"name":"slow","runtime":"python","entry":"main.py","timeout_ms":8000,"max_workers":1}"#
                .write(toFile: v1 + "/verge.json", atomically: true, encoding: .utf8)
            try
                #"{"name":"slow","runtime":"python","entry":"main.py","timeout_ms":8000,"max_workers":1,"env":{"V":"2"}}"#
                .write(toFile: v2 + "/verge.json", atomically: true, encoding: .utf8)
            #expect(try await cluster.deploy(v1).status == 0)
            _ = try await TestHTTP.get(cluster.gatewayURL + "/slow?ms=1")
            // One worker, six calls of 400 ms: most of them are queued on version 1 when version 2 goes live.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await TestHTTP.get(cluster.gatewayURL + "/slow?ms=400").status }
                }
                try await Task.sleep(for: .milliseconds(150))
                let deploy = try await cluster.deploy(v2)
                #expect(deploy.status == 0, "\(deploy.stderr)")
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 6))
            let records = try await usageRecords(cluster, expecting: 7)
            #expect(
                Set(records.compactMap { $0["version"] as? String }).count == 2, "calls were served by both versions")
        }
    }

    @Test func cleanShutdownLeavesNoProcessBehind() async throws {
        let cluster = try await LocalClusterProcess.start()
        defer { cluster.dataDirectory.remove() }
        #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
        for location in [(48.85, 2.35), (40.71, -74.01), (35.68, 139.69)] {
            #expect(try await TestHTTP.get(cluster.gatewayURL + "/echo", from: location).status == 200)
        }
        var pids: [Int32] = []
        #expect(
            try await eventually {
                pids = try await cluster.workerPIDs(function: "echo")
                return pids.count == 3
            }, "each host reports its warm worker")
        #expect(pids.allSatisfy { kill($0, 0) == 0 })
        let status = await cluster.stop()
        #expect(status == 0, "verge dev should exit 0 on SIGTERM")
        #expect(pids.allSatisfy { kill($0, 0) != 0 }, "a worker outlived the cluster")
        #expect(cluster.log.contains("stopped"))
    }
}
