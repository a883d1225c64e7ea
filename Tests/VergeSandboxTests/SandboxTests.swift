import Foundation
import Logging
import Testing
import VergeCore

@testable import VergeSandbox

/// The sandbox end to end: real bubblewrap, the real helper, real cgroups. Needs a root host.
@Suite(.serialized, .enabled(if: geteuid() == 0, "sandboxes need a root host (CI runs as root)"))
struct SandboxTests {
    static let python = "/usr/bin/python3"

    /// A sandbox whose user registry lives in a temporary directory.
    static func withSandbox<T>(_ body: (Sandbox, String) throws -> T) throws -> T {
        let directory = NSTemporaryDirectory() + "verge-sandbox-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/bundle", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = SandboxConfiguration(
            hostName: "test", scope: directory, helper: helperPath())
        configuration.usersDatabase = directory + "/users.sqlite"
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
            runtimeDirectory: nil, sharedDirectories: [], command: [python, "-I", "-S", "-c", code],
            environment: ["PATH": "/usr/bin:/bin"], limits: limits, inheritedDescriptors: 3)
        let launch = try sandbox.launch(spec)
        defer { launch.cgroup.remove() }
        return launch.runToCompletion()
    }

    @Test func aWorkerSeesOnlyItsBundleAndRunsAsItsTenantsUser() throws {
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
