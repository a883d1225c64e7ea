import Foundation
import Synchronization
import Testing
import VergeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Real hostile bundles (`Tests/Fixtures/hostile/`) against a live local cluster. For each attack: it is contained,
/// the host stays healthy, a neighbour function keeps answering at its normal latency while the attack runs, and
/// the usage record says what happened.
@Suite(
    .serialized, .wholeMachine, .timeLimit(.minutes(3)),
    .enabled(if: geteuid() == 0, "sandboxes need a root host (CI runs as root)")
)
struct HostileFunctionTests {
    /// Starts a cluster with the neighbour (`echo`) and the hostile `function`, measures the neighbour unloaded,
    /// then runs `body`.
    func attacking(
        _ function: String, bundle: String? = nil, _ body: (Attack) async throws -> Void
    ) async throws {
        // A secret of the host's environment that no function may see.
        setenv("VERGE_TEST_HOST_SECRET", "host-secret-\(UUID().uuidString)", 1)
        try await LocalClusterProcess.with { cluster in
            #expect(try await cluster.deploy(Paths.fixtureFunction("echo")).status == 0)
            let deploy = try await cluster.deploy(bundle ?? Paths.hostileFunction(function))
            #expect(deploy.status == 0, "\(function): \(deploy.stderr)")
            let fra = try #require(cluster.hostURLs["fra"])
            var samples: [Duration] = []
            for _ in 0..<Attack.minimumSamples { samples.append(try await TestHTTP.get(fra + "/echo").elapsed) }
            try await body(Attack(cluster: cluster, fra: fra, unloadedP99: Attack.p99(samples)))
        }
    }
}

/// One attack on a live cluster.
struct Attack {
    let cluster: LocalClusterProcess
    let fra: String
    /// The neighbour's p99 with nothing else running.
    let unloadedP99: Duration

    /// Neighbour calls measured unloaded and at least during each attack: enough that a p99 is not just the one
    /// slowest call (one scheduling hiccup of a shared machine), as it would be with under 100.
    static let minimumSamples = 300

    static func p99(_ samples: [Duration]) -> Duration {
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
    }

    /// Runs the call `path` while calling the neighbour (`echo` on the same host) back to back; returns the
    /// attack's response after checking that every neighbour call succeeded, that the neighbour's p99 over the
    /// attack stayed within 2× its p99 without it — measured before the attack and, if the bound is missed, again
    /// after it (the larger of the two: load from outside the test then counts on both sides) — with a floor of 5 ms
    /// for that p99 (below it, scheduler jitter on a small shared machine dominates), and that the host is healthy
    /// afterwards.
    ///
    /// `answered` runs as soon as the attack's response is in, before the neighbour's last calls: for checks that
    /// must see the attacker's processes before its worker idles out.
    func during(
        _ path: String, answered: (@Sendable () -> Void)? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestResponse {
        let fra = self.fra
        let done = Flag()
        let attack = Task {
            defer { done.set() }
            let response = try await TestHTTP.get(fra + path)
            answered?()
            return response
        }
        var samples: [Duration] = []
        var statuses: Set<Int> = []
        while samples.count < Self.minimumSamples || !done.isSet, samples.count < 5000 {
            let response = try await TestHTTP.get(fra + "/echo")
            samples.append(response.elapsed)
            statuses.insert(response.status)
        }
        let response = try await attack.value
        let p99 = Self.p99(samples)
        var baseline = unloadedP99
        if p99 > max(baseline, .milliseconds(5)) * 2 {
            // The neighbour again once the attack is over: what else the machine did meanwhile (other tests, other
            // tenants of a shared machine) slows it during the attack too, and the attack is what is measured.
            // Only when needed: the measurement takes time, and some attacks are checked right after.
            var after: [Duration] = []
            for _ in 0..<Self.minimumSamples { after.append(try await TestHTTP.get(fra + "/echo").elapsed) }
            baseline = max(baseline, Self.p99(after))
        }
        let limit = max(baseline, .milliseconds(5)) * 2
        #expect(statuses == [200], "neighbour calls failed during \(path): \(statuses)", sourceLocation: sourceLocation)
        #expect(
            p99 <= limit,
            "neighbour p99 \(p99) during \(path) exceeds 2× its p99 without the attack (\(baseline))",
            sourceLocation: sourceLocation)
        let health = try await TestHTTP.get(fra + "/_verge/health")
        #expect(health.status == 200, "the host is unhealthy after \(path)", sourceLocation: sourceLocation)
        return response
    }

    /// The usage record of the call that got `response`.
    func record(of response: TestResponse) async throws -> [String: Any] {
        let id = try #require(response.header("x-verge-invocation-id"))
        var found: [String: Any]?
        _ = try await eventually(timeout: .seconds(15), every: .milliseconds(100)) {
            let result = try await cluster.verge(["usage", "--format", "jsonl"])
            found = result.stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }.first { $0["invocation_id"] as? String == id }
            return found != nil
        }
        return try #require(found, "no usage record for \(id)")
    }

    /// Processes in the cgroups of `function`'s workers on this machine.
    func sandboxProcesses(_ function: String) -> [Int32] {
        let base = "/sys/fs/cgroup/pids/verge"
        var pids: [Int32] = []
        for host in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
            for group in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + host)) ?? []
            where group.hasPrefix(function + "-") {
                let procs = KernelFileForTests.read("\(base)/\(host)/\(group)/cgroup.procs") ?? ""
                pids += procs.split(separator: "\n").compactMap { Int32($0) }
            }
        }
        return pids
    }

    func error(_ response: TestResponse) -> [String: Any] {
        ((try? response.json())?["error"] as? [String: Any]) ?? [:]
    }

}

extension HostileFunctionTests {
    @Test func aForkBombIsHeldAtItsProcessLimitAndDiesWithItsCall() async throws {
        try await attacking("fork-bomb") { attack in try await attack.forkBomb() }
    }

    @Test func aMemoryBombIsStoppedAtItsMemoryLimit() async throws {
        try await attacking("memory-bomb") { attack in try await attack.memoryBomb() }
    }

    @Test func aBusyLoopIsStoppedAtItsCPULimitLongBeforeItsDeadline() async throws {
        try await attacking("cpu-burn") { attack in try await attack.cpuBurn() }
    }

    @Test func hugeFilesStopAtTheFileSizeLimitAndTmpAtItsSize() async throws {
        try await attacking("disk-filler") { attack in try await attack.diskFiller() }
    }

    @Test func aFunctionSeesNothingOfTheHostOrOtherFunctions() async throws {
        try await attacking("snoop") { attack in try await attack.snoop() }
    }

    @Test func signallingTheHostOrEverythingHarmsOnlyTheAttacker() async throws {
        try await attacking("killer") { attack in try await attack.killer() }
    }

    @Test func aFunctionCannotReachThePlatformsPorts() async throws {
        try await attacking("prober") { attack in try await attack.prober() }
    }

    @Test func aLogFloodSlowsTheFunctionNotItsHost() async throws {
        try await attacking("log-flood") { attack in try await attack.logFlood() }
    }

    @Test func aWorkerThatAnswersAheadIsReplacedBeforeAnyoneReadsIt() async throws {
        try await attacking("answer-ahead") { attack in try await attack.answerAhead() }
    }

    @Test func aDaemonDiesWithItsWorker() async throws {
        try await attacking("daemon") { attack in try await attack.daemon() }
    }

    @Test func aManifestsEnvironmentReachesNoProcessOutsideTheSandbox() async throws {
        try await attacking("env-injection") { attack in try await attack.envInjection() }
    }

    @Test(.enabled(if: CCompiler.path != nil, "needs cc to build the fixture's preload library"))
    func aWorkerInheritsNoDescriptorOfTheHost() async throws {
        let directory = try TemporaryDirectory(prefix: "verge-fd-inheritance")
        defer { directory.remove() }
        let bundle = try directory.copy(Paths.hostileFunction("fd-inheritance"), as: "fd-inheritance")
        try await blocking { try CCompiler.sharedLibrary(bundle + "/inherited.c", output: bundle + "/inherited.so") }
        try await attacking("fd-inheritance", bundle: bundle) { attack in try await attack.fdInheritance() }
    }

    @Test(.enabled(if: HostVsock.available, "the kernel has no AF_VSOCK: there is no vsock port space to reach"))
    func aFunctionCannotOpenVirtualMachineSockets() async throws {
        try await attacking("vsock") { attack in try await attack.vsock() }
    }
}

/// The machine's C compiler, for fixtures that need a native library.
enum CCompiler {
    static let path: String? = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    static func sharedLibrary(_ source: String, output: String) throws {
        let compiler = try #require(path)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: compiler)
        process.arguments = ["-shared", "-fPIC", "-O1", "-o", output, source]
        try ProcessLaunch.run(process)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "\(compiler) could not build \(source)")
    }
}

/// AF_VSOCK on the test machine, outside any sandbox.
enum HostVsock {
    static let family: Int32 = 40  // AF_VSOCK

    static var available: Bool {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// A listening socket on `port` of every CID, or `nil` when it cannot be made.
    static func listen(port: UInt32) -> Int32? {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        // struct sockaddr_vm: family, reserved, port, cid (VMADDR_CID_ANY), 4 zero bytes; host byte order.
        var address = [UInt8](repeating: 0, count: 16)
        withUnsafeBytes(of: UInt16(family)) { address.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: port) { address.replaceSubrange(4..<8, with: $0) }
        withUnsafeBytes(of: UInt32.max) { address.replaceSubrange(8..<12, with: $0) }
        let bound = address.withUnsafeBytes {
            bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
        }
        guard bound == 0, Glibc.listen(fd, 1) == 0 else {
            close(fd)
            return nil
        }
        return fd
    }
}

extension Attack {
    func forkBomb() async throws {
        let response = try await during("/fork-bomb")
        #expect(response.status == 507, "\(response.text)")
        #expect(error(response)["limit"] as? String == "processes")
        let record = try await record(of: response)
        #expect(record["status"] as? String == "limit_exceeded")
        #expect(record["limit"] as? String == "processes")
        #expect(try await eventually { sandboxProcesses("fork-bomb").isEmpty }, "fork bomb processes survived")
    }

    func memoryBomb() async throws {
        let response = try await during("/memory-bomb")
        #expect(response.status == 507, "\(response.text)")
        #expect(error(response)["limit"] as? String == "memory")
        let record = try await record(of: response)
        #expect(record["status"] as? String == "limit_exceeded")
        #expect(record["limit"] as? String == "memory")
    }

    func cpuBurn() async throws {
        let response = try await during("/cpu-burn")
        #expect(response.status == 504, "\(response.text)")
        #expect(error(response)["limit"] as? String == "cpu")
        #expect(response.elapsed < .seconds(9), "cpu_ms is 300, the deadline 10 s: \(response.elapsed)")
        let record = try await record(of: response)
        #expect(record["status"] as? String == "limit_exceeded")
        #expect(record["limit"] as? String == "cpu")
    }

    func diskFiller() async throws {
        let response = try await during("/disk-filler")
        #expect(response.status == 200, "\(response.text)")
        let report = try response.json()
        let big = try #require(report["big_file"] as? [String: Any])
        #expect(big["error"] as? String == "File too large")
        #expect((big["written"] as? Int ?? .max) <= 4 << 20)
        let parts = try #require(report["many_files"] as? [[String: Any]])
        let total = parts.reduce(0) { $0 + ($1["written"] as? Int ?? 0) } + (big["written"] as? Int ?? 0)
        #expect(total <= 8 << 20, "tmp_mb is 8, the function wrote \(total) bytes")
        #expect(parts.contains { $0["error"] as? String == "No space left on device" })
        // The function caught EFBIG and ENOSPC itself: an ordinary call, billed as one.
        #expect(try await record(of: response)["status"] as? String == "ok")
    }

    func snoop() async throws {
        let data = cluster.dataDirectory.path + "/data"
        let bundles = data + "/hosts/fra/bundles"
        let otherBundle = try #require(try FileManager.default.contentsOfDirectory(atPath: bundles).first)
        let query =
            "data_dir=\(data)&other_bundle=\(bundles)/\(otherBundle)&host_database=\(data)/hosts/fra/host.sqlite"
        let response = try await during("/snoop?" + query)
        #expect(response.status == 200, "\(response.text)")
        let report = try response.json()
        #expect((report["uid"] as? Int ?? 0) >= 2_100_000_000, "runs as its tenant's unprivileged user")
        for key in ["shadow", "passwd", "root_home", "data_dir", "other_bundle", "host_database"] {
            let outcome = (report[key] as? [String: Any])?["outcome"] as? String
            #expect(outcome == "No such file or directory", "\(key): \(report[key] ?? "missing")")
        }
        #expect(report["proc"] as? [String] == ["1", "2"], "only the sandbox's init and the worker are visible")
        let environ = ((report["proc_1_environ"] as? [String: Any])?["text"] as? String) ?? ""
        #expect(!environ.contains("VERGE_TEST_HOST_SECRET"))
        let keys = report["own_environ_keys"] as? [String] ?? []
        #expect(!keys.contains("VERGE_TEST_HOST_SECRET") && !keys.isEmpty)
        #expect(((report["tmp"] as? [String: Any])?["entries"] as? [String]) == [], "a private, empty /tmp")
        // Of the host's /usr only the runtime's view: no operator tools, no shell, only the interpreter.
        for key in ["usr_local", "usr_share_doc", "bin_sh"] {
            let outcome = (report[key] as? [String: Any])?["outcome"] as? String
            #expect(outcome == "No such file or directory", "\(key): \(report[key] ?? "missing")")
        }
        let binaries = ((report["usr_bin"] as? [String: Any])?["entries"] as? [String]) ?? []
        #expect(binaries.count == 1 && binaries.allSatisfy { $0.hasPrefix("python3") }, "/usr/bin holds \(binaries)")
        #expect(try await record(of: response)["status"] as? String == "ok")
    }

    func killer() async throws {
        let hostPID = cluster.process.processIdentifier
        let first = try await during("/killer?host_pid=\(hostPID)")
        #expect(try first.json()["host"] as? String == "No such process")
        // kill(-1) reaches every process the caller may signal except itself: in its PID namespace, none.
        let second = try await during("/killer?all=1")
        #expect(second.status == 200, "\(second.text)")
        #expect(try second.json()["all"] as? String == "No such process")
        #expect(kill(hostPID, 0) == 0 && cluster.process.isRunning, "the cluster survived kill -9 -1")
        let neighbour = try await TestHTTP.get(fra + "/echo")
        #expect(neighbour.status == 200)
        let record = try await record(of: second)
        #expect(record["status"] as? String == "ok")
    }

    func prober() async throws {
        let targets = [cluster.apiURL, cluster.gatewayURL, fra].map { $0.replacingOccurrences(of: "http://", with: "") }
        let response = try await during("/prober?targets=" + targets.joined(separator: ","))
        #expect(response.status == 200, "\(response.text)")
        let report = try response.json()
        for target in targets {
            let outcome = report[target] as? String ?? "missing"
            #expect(!outcome.hasPrefix("connected"), "\(target): \(outcome)")
        }
        #expect(report["interfaces"] as? [String] == ["lo"], "a network namespace with loopback only")
        #expect(try await record(of: response)["status"] as? String == "ok")
    }

    /// 2 MiB of long lines and 20000 empty ones, against a budget of 256 KiB/s after a 1 MiB burst: the function
    /// waits for its pipe, and the host spends little CPU on it.
    func logFlood() async throws {
        let response = try await during("/log-flood")
        #expect(response.status == 200, "\(response.text)")
        let seconds = try #require(try response.json()["seconds"] as? Double)
        // 2 MiB of lines against a 1 MiB burst at 256 KiB/s: at least (1 MiB - a 64 KiB pipe - one 16 KiB read)
        // / 256 KiB/s = 3.7 s however fast the host reads (a slow host only makes it longer).
        #expect(seconds >= 3.5, "the flood was not slowed down: \(seconds) s")
        // Again with nothing else calling the host, for what the flood alone costs it.
        let clusterPID = cluster.process.processIdentifier
        let before = Self.cpuTime(of: clusterPID)
        let alone = try await TestHTTP.get(fra + "/log-flood")
        let used = Self.cpuTime(of: clusterPID) - before
        let aloneSeconds = try #require(try alone.json()["seconds"] as? Double)
        #expect(used < .seconds(aloneSeconds * 0.5), "the host used \(used) of CPU over a \(aloneSeconds) s flood")
    }

    /// User + system CPU time of a process so far.
    static func cpuTime(of pid: Int32) -> Duration {
        let stat = KernelFileForTests.read("/proc/\(pid)/stat") ?? ""
        guard let close = stat.lastIndex(of: ")") else { return .zero }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Fields 14 and 15 of the line, counted after the command name: utime, stime (clock ticks).
        guard fields.count > 13, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return .zero }
        let hertz = Int64(sysconf(Int32(_SC_CLK_TCK)))
        return .milliseconds((user + system) * 1000 / hertz)
    }

    /// The function writes a complete forged response on its channel while idle, for whoever calls next. The host
    /// kills the worker on the first frame it sends outside a call, so the next caller gets a fresh worker's answer.
    func answerAhead() async throws {
        let first = try await during("/answer-ahead?mode=later")
        #expect(first.status == 200, "\(first.text)")
        let worker = try #require(try first.json()["worker_id"] as? String)
        // Its idle timeout is the host's (minutes): only the host's reaction to the forged frames ends it.
        #expect(
            try await eventually(timeout: .seconds(15)) { sandboxProcesses("answer-ahead").isEmpty },
            "the worker that wrote outside a call is still alive")
        // The host closed the worker's socket when the forged frames arrived, so no call meets it again, reaped or
        // not: the next call is answered by a fresh worker, and nobody reads the forged answer.
        let next = try await TestHTTP.get(fra + "/answer-ahead")
        #expect(next.status == 200, "\(next.text)")
        #expect(!next.text.contains("FORGED"), "a caller got the forged answer")
        #expect((try? next.json()["worker_id"] as? String) != worker, "the worker that wrote it still serves")
    }

    func daemon() async throws {
        // The worker idles out a second after its call: its processes are listed as soon as the call is answered.
        let seen = Mutex<[Int32]>([])
        let response = try await during(
            "/daemon", answered: { [self] in seen.withLock { $0 = sandboxProcesses("daemon") } })
        #expect(response.status == 200, "\(response.text)")
        let processes = seen.withLock { $0 }
        #expect(processes.count >= 4, "bubblewrap, its init, the worker and the daemon: \(processes)")
        // idle_timeout_s is 1: the worker stops, and with it everything it started.
        #expect(
            try await eventually(timeout: .seconds(15)) { processes.allSatisfy { kill($0, 0) != 0 } },
            "a process of the daemon function outlived its worker")
        #expect(sandboxProcesses("daemon").isEmpty)
        #expect(try await record(of: response)["status"] as? String == "ok")
    }

    /// The manifest's env asks the dynamic loader for a trace in `/tmp/verge-env-injection.PID`. Only the worker,
    /// inside its sandbox (with its private `/tmp`), may run with that environment: a trace in the machine's `/tmp`
    /// means the root helper or bubblewrap obeyed it, and `LD_PRELOAD` pointing at a file of the tenant's bundle
    /// would run the tenant's code as root on the host.
    func envInjection() async throws {
        let prefix = "verge-env-injection."
        func traces() -> [(name: String, owner: Int)] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
            return names.filter { $0.hasPrefix(prefix) }.map { name in
                let owner = (try? FileManager.default.attributesOfItem(atPath: "/tmp/" + name))?[.ownerAccountID]
                return (name, (owner as? NSNumber)?.intValue ?? -1)
            }
        }
        for trace in traces() { try? FileManager.default.removeItem(atPath: "/tmp/" + trace.name) }
        defer { for trace in traces() { try? FileManager.default.removeItem(atPath: "/tmp/" + trace.name) } }

        let response = try await during("/env-injection")
        #expect(response.status == 200, "\(response.text)")
        #expect((try response.json()["uid"] as? Int ?? 0) >= 2_100_000_000)
        let found = traces().map { "\($0.name) (uid \($0.owner))" }
        #expect(found.isEmpty, "processes outside the sandbox ran with the function's LD_* variables: \(found)")
    }

    /// The test binds a vsock port on the machine; the function, in its network namespace, must not be able to open
    /// a vsock socket at all: vsock has one port space with the host and a way to the hypervisor that a network
    /// namespace does not close. The seccomp filter refuses the family.
    func vsock() async throws {
        let port = UInt32.random(in: 40_000...60_000)
        let listener = try #require(HostVsock.listen(port: port), "cannot listen on vsock port \(port)")
        defer { close(listener) }
        let response = try await during("/vsock?port=\(port)")
        #expect(response.status == 200, "\(response.text)")
        let report = try response.json()
        #expect(report["socket"] as? String != "created", "the sandbox opened a vsock socket: \(report)")
    }

    /// A worker must start with fds 0-3 only: none of the host process's descriptors that lack close-on-exec
    /// (libuv's spawn closes nothing, bubblewrap passes everything on): the listening sockets of the control plane,
    /// the gateway and the hosts, and their live connections. `verge-sandbox-exec` closes everything above what the
    /// worker is given before anything else; native code that runs before any runtime (here a preloaded library)
    /// sees nothing.
    func fdInheritance() async throws {
        let response = try await during("/fd-inheritance")
        #expect(response.status == 200, "\(response.text)")
        let report = try response.json()
        let inherited = try #require(report["inherited"] as? [String], "\(report)")
        let ports = [cluster.apiURL, cluster.gatewayURL, fra].compactMap { URL(string: $0)?.port }
        let platform = inherited.filter { line in ports.contains { line.hasSuffix(":\($0)") } }
        #expect(inherited.isEmpty, "the worker inherited \(inherited.count) descriptors: \(inherited)")
        #expect(platform.isEmpty, "among them the platform's own sockets: \(platform)")
    }
}
