import Foundation
import Logging
import Synchronization
import Testing
import VergeCore
import VergeSupervisor
import VergeTestSupport

@testable import VergeSandbox
import CVergeSeccomp

#if canImport(Glibc)
import Glibc
#endif

/// Sandbox helpers started ahead of their workers: real helpers, real cgroups, real bubblewrap. Needs a root host.
@Suite(.serialized, .cluster, .enabled(if: geteuid() == 0, "sandboxes need a root host (CI runs as root)"))
struct ParkedHelperPoolTests {
    static let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    /// A prepared sandbox (user registry in a temporary directory), a supervisor and a bundle directory.
    static func withPool<T>(
        capacity: Int, _ body: (ParkedHelperPool, Sandbox, Supervisor, String) async throws -> T
    ) async throws -> T {
        let directory = NSTemporaryDirectory() + "verge-parked-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/bundle", withIntermediateDirectories: true)
        chmod(directory, 0o755)
        chmod(directory + "/bundle", 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = SandboxConfiguration(
            hostName: "parked", scope: directory, helper: SandboxTests.helperPath())
        configuration.usersDatabase = directory + "/users.sqlite"
        let prepared = configuration
        let sandbox = try await offThread { try Sandbox.prepare(prepared, logger: Self.logger) }
        let loop = try SupervisorLoop()
        defer { loop.shutdown() }
        let supervisor = Supervisor(loop: loop, logger: Self.logger)
        let pool = ParkedHelperPool(sandbox: sandbox, supervisor: supervisor, capacity: capacity, logger: Self.logger)
        defer { sandbox.cgroups.removeOwn() }
        do {
            let result = try await body(pool, sandbox, supervisor, directory + "/bundle")
            await pool.shutdown()
            return result
        } catch {
            await pool.shutdown()
            throw error
        }
    }

    /// Takes a parked helper, waiting for one to have parked.
    static func takeParked(_ pool: ParkedHelperPool) async throws -> ParkedHelper {
        var taken: ParkedHelper?
        let parked = try await poll {
            taken = pool.take(); return taken != nil
        }
        #expect(parked, "no helper parked within the timeout")
        return try #require(taken)
    }

    /// Runs `code` (Python) as a worker of `tenant` through `helper`; returns its exit and its stdout.
    static func run(
        _ code: String, through helper: ParkedHelper, sandbox: Sandbox, bundle: String, tenant: String
    ) async throws -> (ProcessExit, String) {
        let spec = SandboxSpec(
            workerName: "parked-test-\(UUID().uuidString.prefix(8))", tenant: tenant, bundleDirectory: bundle,
            runtimeDirectory: nil, sharedDirectories: [],
            systemPaths: SystemView.base + SystemView.python(SandboxTests.python),
            command: [SandboxTests.python, "-I", "-S", "-c", code],
            environment: ["PATH": "/usr/bin:/bin"], limits: SandboxTests.limits, inheritedDescriptors: 4)
        let launch = try sandbox.launch(spec, parked: helper)
        #expect(launch.cgroup === helper.cgroup)
        // Named after its worker, like a group made for it (where the kernel renames cgroups: v1).
        if sandbox.cgroups.version == .v1 {
            #expect(launch.cgroup.directories.values.allSatisfy { $0.hasSuffix("/" + spec.workerName) })
            #expect(launch.cgroup.processes() == [helper.pid])
        }
        var output: [Int32] = [-1, -1]
        // Close-on-exec: other tests of this process spawn children meanwhile, which must not inherit them (the
        // helper gets its descriptors over its socket).
        #expect(verge_pipe_cloexec(&output) == 0)
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        let exit = Mutex<ProcessExit?>(nil)
        try helper.start(
            arguments: launch.arguments,
            descriptors: [output[1], output[1], null, launch.seccompDescriptor, launch.argsDescriptor],
            onExit: { status in exit.withLock { $0 = status } })
        launch.spawned()
        close(output[1])
        close(null)
        let readEnd = output[0]
        let text = try await offThread { () -> String in
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(readEnd, &buffer, buffer.count)
                if count <= 0 { break }
                bytes += buffer[0..<count]
            }
            close(readEnd)
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(try await poll { exit.withLock { $0 } != nil }, "the worker was not reaped")
        return (try #require(exit.withLock { $0 }), text)
    }

    @Test func aParkedHelperWaitsInACgroupOfItsOwnAndBecomesExactlyOneSandboxedWorker() async throws {
        try await Self.withPool(capacity: 2) { pool, sandbox, _, bundle in
            await pool.refill()
            #expect(pool.count == 2)
            let first = try await Self.takeParked(pool)
            let second = try await Self.takeParked(pool)
            // Two helpers, two cgroups; each helper is the only process of its own group.
            #expect(first.pid != second.pid)
            #expect(Set(first.cgroup.directories.values).isDisjoint(with: Set(second.cgroup.directories.values)))
            #expect(first.cgroup.processes() == [first.pid])
            #expect(second.cgroup.processes() == [second.pid])
            // Taken means out of the pool: nothing more to hand out until it refills.
            #expect(pool.take() == nil)
            #expect(!pool.pids.contains(first.pid) && !pool.pids.contains(second.pid))

            let (status, output) = try await Self.run(
                """
                import os, json, socket
                limit = open('/proc/self/limits').read()
                server = socket.socket()
                server.bind(('127.0.0.1', 0))
                server.listen()
                socket.create_connection(server.getsockname(), timeout=5).close()
                print(json.dumps({'uid': os.getuid(), 'root': sorted(os.listdir('/')),
                                  'pid': os.getpid(), 'nofile': [l for l in limit.splitlines() if 'open files' in l],
                                  'net': os.stat('/proc/self/ns/net').st_ino,
                                  'interfaces': [name for _, name in socket.if_nameindex()]}))
                """, through: first, sandbox: sandbox, bundle: bundle, tenant: "acme")
            #expect(status == .exited(0), "worker output: \(output)")
            let seen = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
            // The tenant's user, its own PID namespace, only what a sandbox shows, the function's limits.
            #expect(seen?["uid"] as? Int == Int(try sandbox.users.id(for: "acme")))
            #expect(seen?["pid"] as? Int == 2)
            #expect((seen?["root"] as? [String])?.contains("root") == false)
            #expect((seen?["root"] as? [String])?.contains("function") == true)
            // A network namespace of its own (the helper made it while parked) with only `lo`, up.
            var hostNetwork = stat()
            #expect(stat("/proc/self/ns/net", &hostNetwork) == 0)
            #expect(seen?["net"] as? Int != nil && seen?["net"] as? Int != Int(hostNetwork.st_ino))
            #expect(seen?["interfaces"] as? [String] == ["lo"])
            let nofile: String = (seen?["nofile"] as? [String])?.first ?? ""
            #expect(nofile.contains("\(SandboxTests.limits.openFiles)"), "limits: \(nofile)")
            let memoryLimit =
                KernelFile.read(
                    (first.cgroup.directories["memory"] ?? "") + "/memory.limit_in_bytes")
                ?? KernelFile.read((first.cgroup.directories["memory"] ?? "") + "/memory.max")
            #expect(
                memoryLimit?.trimmingCharacters(in: .whitespacesAndNewlines) == "\(SandboxTests.limits.memoryBytes)")
            #expect(try await poll { first.cgroup.remove() }, "the worker's cgroup cannot be removed")

            // The second one, never started, goes with nothing run.
            second.discard()
            #expect(try await poll { kill(second.pid, 0) != 0 || isZombie(second.pid) })
        }
    }

    @Test func aHelperIsNeverHandedOutTwiceAndNoneIsLeftAfterShutdown() async throws {
        var groups: [String] = []
        var pids: [Int32] = []
        try await Self.withPool(capacity: 2) { pool, sandbox, _, _ in
            var taken: [ParkedHelper] = []
            for _ in 0..<3 {
                await pool.refill()
                taken.append(try await Self.takeParked(pool))
            }
            // Three takes, three different helpers and cgroups, while all three are still held.
            #expect(Set(taken.map(\.pid)).count == 3)
            #expect(
                Set(taken.flatMap { $0.cgroup.directories.values }).count == Set(taken[0].cgroup.directories.values)
                    .count * 3)
            for helper in taken { helper.discard() }
            await pool.refill()
            #expect(
                try await poll {
                    pool.pids.count == 2 && pool.pids.allSatisfy { pid in !taken.map(\.pid).contains(pid) }
                })
            pids = pool.pids
            groups = sandbox.cgroups.bases.values.flatMap { base in
                ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter { $0.hasPrefix("parked-") }
                    .map { base + "/" + $0 }
            }
            #expect(!groups.isEmpty)
            await pool.shutdown()
            #expect(pool.count == 0)
            #expect(pool.take() == nil)
            // Shut down: no helper runs, no parked group is left, and refilling starts nothing.
            await pool.refill()
            #expect(pool.count == 0)
        }
        for pid in pids { #expect(kill(pid, 0) != 0 || isZombie(pid), "helper \(pid) survived the shutdown") }
        for group in groups { #expect(!FileManager.default.fileExists(atPath: group), "\(group) is left") }
    }

    @Test func helpersParkedTooLongAreReplacedWithFreshOnes() async throws {
        try await Self.withPool(capacity: 2) { pool, sandbox, _, _ in
            await pool.refill()
            let parked = try await poll { pool.pids.count == 2 }
            #expect(parked)
            let old = pool.pids
            // Not old enough yet: nothing goes.
            #expect(pool.recycle(olderThan: .seconds(60)) == 0)
            #expect(pool.pids == old)
            // A minute on, both go: they exit, their cgroups are removed, and refilling parks two new ones.
            let later = ContinuousClock.now + .seconds(61)
            #expect(pool.recycle(olderThan: .seconds(60), now: later) == 2)
            #expect(pool.count == 0)
            let gone = try await poll { old.allSatisfy { kill($0, 0) != 0 || isZombie($0) } }
            #expect(gone, "a replaced helper runs on")
            await pool.refill()
            let refilled = try await poll { pool.pids.count == 2 }
            #expect(refilled)
            #expect(Set(pool.pids).isDisjoint(with: old))
            func parkedGroups() -> Set<String> {
                Set(
                    sandbox.cgroups.bases.values.flatMap { base in
                        ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter {
                            $0.hasPrefix("parked-")
                        }
                    })
            }
            // Only the two new helpers' groups are left.
            let groupsLeft = try await poll { parkedGroups().count == 2 }
            #expect(groupsLeft, "parked groups: \(parkedGroups())")
        }
    }

    @Test func aParkedHelperThatDiesLeavesThePoolAndItsCgroup() async throws {
        try await Self.withPool(capacity: 1) { pool, sandbox, _, _ in
            await pool.refill()
            #expect(try await poll { pool.pids.count == 1 })
            let pid = try #require(pool.pids.first)
            kill(pid, SIGKILL)
            #expect(try await poll { pool.count == 0 }, "a dead helper stays in the pool")
            #expect(pool.take() == nil)
            func left() -> [String] {
                sandbox.cgroups.bases.values.flatMap { base in
                    ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter {
                        $0.hasPrefix("parked-")
                    }
                }
            }
            #expect(try await poll { left().isEmpty }, "the dead helper's cgroup is left: \(left())")
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes.
private func poll(
    timeout: Duration = .seconds(10), _ condition: () async throws -> Bool
) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
