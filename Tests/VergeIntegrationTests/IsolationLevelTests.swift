import Foundation
import Testing
import VergeTestSupport

/// The isolation level is visible wherever an operator looks: `verge hosts` (table and JSON) and the host's log.
@Suite(.serialized, .cluster, .timeLimit(.minutes(2)))
struct IsolationLevelTests {
    static func hosts(_ cluster: LocalClusterProcess) async throws -> [[String: Any]] {
        let result = try await cluster.verge(["hosts", "--format", "json"])
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
    }

    @Test(.enabled(if: geteuid() == 0, "sandboxes need a root host (CI runs as root)"))
    func hostsSandboxByDefault() async throws {
        try await LocalClusterProcess.with { cluster in
            var hosts: [[String: Any]] = []
            _ = try await eventually {
                hosts = try await Self.hosts(cluster)
                return hosts.count == 3
            }
            #expect(hosts.map { $0["isolation"] as? String } == ["sandbox", "sandbox", "sandbox"])
            #expect(cluster.log.contains("host.isolation=sandbox"))
        }
    }

    @Test func anUnsandboxedClusterSaysSoEverywhere() async throws {
        let cluster = try await LocalClusterProcess.start(extraArguments: ["--isolation", "none"])
        defer { cluster.dataDirectory.remove() }
        var hosts: [[String: Any]] = []
        _ = try await eventually {
            hosts = try await Self.hosts(cluster)
            return hosts.count == 3
        }
        #expect(hosts.map { $0["isolation"] as? String } == ["none", "none", "none"])
        let table = try await cluster.verge(["hosts"]).stdout
        #expect(table.components(separatedBy: "NONE (unsandboxed)").count == 4, "\(table)")
        #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
        #expect(try await TestHTTP.get(cluster.gatewayURL + "/echo").status == 200)
        await cluster.stop()
        let hostLines = cluster.log.split(separator: "\n").filter { $0.contains("component=host") }
        #expect(!hostLines.isEmpty)
        #expect(hostLines.allSatisfy { $0.contains("host.isolation=none") }, "every host line says isolation=none")
        #expect(cluster.log.contains("WITHOUT a sandbox"))
    }

    @Test(.enabled(if: geteuid() == 0, "sandboxes need a root host (CI runs as root)"))
    func sandboxedWorkersDieWithTheirHost() async throws {
        let cluster = try await LocalClusterProcess.start()
        defer { cluster.dataDirectory.remove() }
        #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
        #expect(try await TestHTTP.get(cluster.gatewayURL + "/echo").status == 200)
        var pids: [Int32] = []
        #expect(
            try await eventually {
                pids = try await cluster.workerPIDs(function: "echo")
                return !pids.isEmpty
            })
        // Everything in the workers' sandboxes, not only the processes the host spawned.
        let sandboxed = pids.flatMap { pid in
            (KernelFileForTests.read("/sys/fs/cgroup/pids" + Self.pidsCgroup(of: pid) + "/cgroup.procs") ?? "")
                .split(separator: "\n").compactMap { Int32($0) }
        }
        #expect(sandboxed.count >= 3 * pids.count, "bubblewrap, its init and the worker: \(sandboxed)")
        // The sandbox helpers the host keeps parked for its next cold starts (still root) die with it too.
        var parked: [Int32] = []
        #expect(
            try await eventually {
                parked = Self.parkedHelpers(of: cluster.process.processIdentifier)
                return !parked.isEmpty
            }, "the host keeps no sandbox helper parked")
        kill(cluster.process.processIdentifier, SIGKILL)
        #expect(
            try await eventually { sandboxed.allSatisfy { kill($0, 0) != 0 } },
            "a sandboxed process outlived its host")
        #expect(
            try await eventually { parked.allSatisfy { kill($0, 0) != 0 } }, "a parked sandbox helper outlived its host")
        await cluster.stop()
    }

    /// The processes in the `parked-N` cgroups of the hosts running in process `pid` (v1 pids hierarchy).
    static func parkedHelpers(of pid: Int32) -> [Int32] {
        let base = "/sys/fs/cgroup/pids/verge"
        var pids: [Int32] = []
        for host in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where host.hasSuffix("-\(pid)") {
            for group in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + host)) ?? []
            where group.hasPrefix("parked-") {
                let procs = KernelFileForTests.read("\(base)/\(host)/\(group)/cgroup.procs") ?? ""
                pids += procs.split(separator: "\n").compactMap { Int32($0) }
            }
        }
        return pids
    }

    static func pidsCgroup(of pid: Int32) -> String {
        for line in (KernelFileForTests.read("/proc/\(pid)/cgroup") ?? "").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3, parts[1] == "pids" { return String(parts[2]) }
        }
        return "/nonexistent"
    }

    @Test func aFunctionAskingForMoreThanTheHostAllowsDoesNotStart() async throws {
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("greedy")).status == 0)
            let response = try await TestHTTP.get(cluster.gatewayURL + "/greedy")
            #expect(response.status == 502)
            let message = ((try response.json()["error"] as? [String: Any])?["message"] as? String) ?? ""
            #expect(message.contains("limits.processes = 4096") && message.contains("at most 1024"), "\(message)")
        }
    }

    @Test func anUnknownIsolationLevelIsRefused() async throws {
        let result = try await CommandRunner.verge(["dev", "--isolation", "chroot", "--data", "/nonexistent"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("isolation"))
    }
}

/// procfs and cgroupfs files, read to their end (Foundation stops at the size they report).
enum KernelFileForTests {
    static func read(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var data = Data()
        while let chunk = try? handle.read(upToCount: 65_536), !chunk.isEmpty { data.append(chunk) }
        return String(decoding: data, as: UTF8.self)
    }
}
