import Foundation
import Logging
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeSandbox

/// The sandbox end to end: real bubblewrap, the real helper, real cgroups. Needs a root host.
@Suite(.serialized, .cluster, .enabled(if: geteuid() == 0, "sandboxes need a root host (CI runs as root)"))
struct SandboxTests {
    /// The interpreter with its links resolved, as hosts run it (the sandbox binds the file itself).
    static let python = URL(fileURLWithPath: "/usr/bin/python3").resolvingSymlinksInPath().path

    /// A sandbox whose user registry lives in a temporary directory.
    static func withSandbox<T>(
        configure: (inout SandboxConfiguration) -> Void = { _ in }, _ body: (Sandbox, String) throws -> T
    ) throws -> T {
        let directory = NSTemporaryDirectory() + "verge-sandbox-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/bundle", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = SandboxConfiguration(
            hostName: "test", scope: directory, helper: helperPath())
        configuration.usersDatabase = directory + "/users.sqlite"
        configure(&configuration)
        let sandbox = try Sandbox.prepare(configuration, logger: Logger(label: "test"))
        return try body(sandbox, directory + "/bundle")
    }

    static func helperPath() -> String {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("verge-sandbox-exec").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("verge-sandbox-exec").path
    }

    static let limits = SandboxLimits(
        memoryBytes: 64 << 20, processes: 16, openFiles: 64, fileSizeBytes: 1 << 20, tmpBytes: 1 << 20)

    static func run(_ sandbox: Sandbox, bundle: String, tenant: String = "acme", _ code: String) throws -> (Int32, String) {
        let spec = SandboxSpec(
            workerName: "t-\(UUID().uuidString.prefix(8))", tenant: tenant, bundleDirectory: bundle,
            runtimeDirectory: nil, sharedDirectories: [], systemPaths: SystemView.base + SystemView.python(python),
            command: [python, "-I", "-S", "-c", code],
            environment: ["PATH": "/usr/bin:/bin"], limits: limits, inheritedDescriptors: 3)
        let launch = try sandbox.launch(spec)
        defer { launch.cgroup.remove() }
        return launch.runToCompletion()
    }

    @Test func aWorkerSeesOnlyItsBundleAndRunsAsItsTenantsUser() async throws {
        try await offThread {
            try Self.withSandbox { sandbox, bundle in
                try "print('bundle file')".write(toFile: bundle + "/main.py", atomically: true, encoding: .utf8)
                let (status, output) = try Self.run(
                    sandbox, bundle: bundle,
                    """
                    import os, json
                    def attempt(f):
                        try:
                            f(); return "allowed"
                        except OSError as e:
                            return "denied"
                    print(json.dumps({
                      "uid": os.getuid(), "pid": os.getpid(), "root": sorted(os.listdir("/")),
                      "procs": sorted(p for p in os.listdir("/proc") if p.isdigit()),
                      "shadow": attempt(lambda: open("/etc/shadow").read()),
                      "bundle": open("/function/main.py").read(),
                      "write_bundle": attempt(lambda: open("/function/x", "w")),
                      "tmp": attempt(lambda: open("/tmp/x", "w").write("x")),
                      "cwd": os.getcwd(),
                    }))
                    """)
                #expect(status == 0, "\(output)")
                let report = try #require(
                    try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
                #expect((report["uid"] as? Int).map { $0 >= Int(SandboxUsers.defaultRange.lowerBound) } == true)
                #expect(report["root"] as? [String] == ["bin", "dev", "etc", "function", "lib", "lib64", "proc", "sbin", "tmp", "usr"])
                #expect((report["procs"] as? [String])?.count ?? 99 <= 2, "only bwrap's init and the worker")
                #expect(report["shadow"] as? String == "denied")
                #expect(report["bundle"] as? String == "print('bundle file')")
                #expect(report["write_bundle"] as? String == "denied")
                #expect(report["tmp"] as? String == "allowed")
                #expect(report["cwd"] as? String == "/function")
            }
        }
    }
}

extension SandboxTests {
    @Test func theSeccompFilterDeniesWhatAFunctionNeverNeeds() async throws {
        try await offThread {
            try Self.withSandbox { sandbox, bundle in
                let (status, output) = try Self.run(
                    sandbox, bundle: bundle,
                    """
                    import ctypes, errno, json, os
                    libc = ctypes.CDLL(None, use_errno=True)
                    def call(number, *args):
                        result = libc.syscall(number, *args)
                        return "allowed" if result >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
                    print(json.dumps({
                      "ptrace": call(101, 16, 1, 0, 0),            # PTRACE_ATTACH to pid 1
                      "mount": call(165, b"none", b"/tmp", b"tmpfs", 0, 0),
                      "unshare_net": call(272, 0x40000000),
                      "unshare_user": call(272, 0x10000000),
                      "keyctl": call(250, 0, 0, 0, 0, 0),
                      "bpf": call(321, 0, 0, 0),
                      "perf_event_open": call(298, 0, 0, -1, -1, 0),
                      "userfaultfd": call(323, 0),
                      "kexec_load": call(246, 0, 0, 0, 0),
                      "init_module": call(175, 0, 0, 0),
                      "reboot": call(169, 0, 0, 0, 0),
                      "clock_settime": call(227, 0, 0),
                      "clone_newns": call(56, 0x00020000 | 17, 0, 0, 0, 0),
                      "clone3": call(435, 0, 0),
                      "getpid": call(39),
                    }))
                    """)
                #expect(status == 0, "\(output)")
                let report = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: String])
                for name in [
                    "ptrace", "mount", "unshare_net", "unshare_user", "keyctl", "bpf", "perf_event_open", "userfaultfd",
                    "kexec_load", "init_module", "reboot", "clock_settime", "clone_newns",
                ] {
                    #expect(report[name] == "EPERM", "\(name): \(report[name] ?? "missing")")
                }
                #expect(report["clone3"] == "ENOSYS")
                #expect(report["getpid"] == "allowed")
            }
        }
    }

    @Test func openFilesStopAtTheLimit() async throws {
        try await offThread {
            try Self.withSandbox { sandbox, bundle in
                // limits.openFiles is 64 here.
                let (status, output) = try Self.run(
                    sandbox, bundle: bundle,
                    """
                    import errno, os
                    opened = []
                    try:
                        while len(opened) < 10000:
                            opened.append(os.open("/dev/null", os.O_RDONLY))
                    except OSError as error:
                        print(len(opened), errno.errorcode[error.errno])
                    """)
                #expect(status == 0, "\(output)")
                let parts = output.split(separator: " ")
                #expect(parts.count == 2 && parts[1].hasPrefix("EMFILE"), "\(output)")
                #expect((Int(parts.first ?? "") ?? .max) < 64, "\(output)")
            }
        }
    }

    @Test func eachTenantHasItsOwnStableUserNeverSharedWithAnother() async throws {
        try await offThread {
            let directory = NSTemporaryDirectory() + "verge-users-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = directory + "/users.sqlite"
            let range: ClosedRange<UInt32> = 3_000_000_000...3_000_000_002
            let first = try SandboxUsers(path: path, scope: "host-a", range: range, subordinateFiles: [])
            let acme = try first.id(for: "acme")
            let globex = try first.id(for: "globex")
            #expect(acme != globex)
            #expect(try first.id(for: "acme") == acme)
            // Another host on the machine shares the registry and never gets an id already handed out.
            let other = try SandboxUsers(path: path, scope: "host-b", range: range, subordinateFiles: [])
            let acmeOnB = try other.id(for: "acme")
            #expect(![acme, globex].contains(acmeOnB))
            // The range is used up: a fourth tenant is refused, not given a shared id.
            #expect(throws: VergeError.self) { try other.id(for: "initech") }
            // After a restart, the same ids.
            let reopened = try SandboxUsers(path: path, scope: "host-a", range: range, subordinateFiles: [])
            #expect(try reopened.id(for: "globex") == globex)
            #expect(try reopened.id(for: "acme") == acme)
        }
    }

    @Test func aRangeOverlappingSubordinateIDsIsRefused() async throws {
        try await offThread {
            let directory = NSTemporaryDirectory() + "verge-users-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try "builder:2100000100:65536\n".write(toFile: directory + "/subuid", atomically: true, encoding: .utf8)
            #expect {
                _ = try SandboxUsers(path: directory + "/users.sqlite", scope: "x", subordinateFiles: [directory + "/subuid"])
            } throws: { error in
                (error as? VergeError)?.message.contains("overlaps") == true
            }
        }
    }

    @Test func aHostWithoutBubblewrapRefusesAndSaysWhatToDo() async throws {
        try await offThread {
            var configuration = SandboxConfiguration(hostName: "test", scope: "x", helper: Self.helperPath())
            configuration.bubblewrap = "/nonexistent/bwrap"
            #expect {
                _ = try Sandbox.prepare(configuration, logger: Logger(label: "test"))
            } throws: { error in
                let message = (error as? VergeError)?.message ?? ""
                return message.contains("/nonexistent/bwrap") && message.contains("--isolation none")
            }
            configuration.bubblewrap = "/usr/bin/bwrap"
            configuration.helper = "/nonexistent/verge-sandbox-exec"
            #expect(throws: VergeError.self) { _ = try Sandbox.prepare(configuration, logger: Logger(label: "test")) }
        }
    }

    @Test func killingAGroupKillsProcessesThatLeftTheSession() async throws {
        try await offThread {
            try Self.withSandbox { sandbox, bundle in
                let group = try sandbox.cgroups.makeGroup(name: "kill-test-\(getpid())", limits: Self.limits)
                defer { group.remove() }
                // A shell joins the group, then leaves a detached sleeper behind and exits.
                let script = "echo $$ > \(group.joinFiles[0]); " + group.joinFiles.dropFirst().map { "echo $$ > \($0); " }.joined()
                    + "setsid sleep 600 & exit 0"
                var pid: pid_t = 0
                let words: [String] = ["/bin/sh", "-c", script]
                let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
                defer { for pointer in argv { free(pointer) } }
                #expect(posix_spawn(&pid, "/bin/sh", nil, nil, argv, nil) == 0)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                let left = group.processes()
                #expect(left.count == 1, "the detached sleeper is still in the group: \(left)")
                group.killAll()
                var gone = false
                for _ in 0..<200 where !gone {
                    gone = group.processes().isEmpty
                    if !gone { usleep(5000) }
                }
                #expect(gone, "killAll left \(group.processes())")
                #expect(left.allSatisfy { kill($0, 0) != 0 || isZombie($0) })
            }
        }
    }
}

/// Whether `pid` has exited and waits for its parent (init) to reap it.
func isZombie(_ pid: Int32) -> Bool {
    (KernelFile.read("/proc/\(pid)/stat") ?? "").contains(") Z ")
}

/// Runs blocking work (spawning sandboxes and waiting for them) on a thread of its own, so it never holds one of
/// the few cooperative threads that every async test of the process shares.
func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
