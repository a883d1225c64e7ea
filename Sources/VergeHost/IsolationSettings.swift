import Foundation
import VergeBundle
import VergeCore
import VergeSandbox

/// How a host isolates its workers, with documented defaults (the README's configuration table lists them).
public struct IsolationSettings: Sendable {
    /// `sandbox` (the default) or `none`, which only an operator's explicit `--isolation none` chooses. A host that
    /// cannot build sandboxes refuses to start rather than run functions without one.
    public var level: IsolationLevel = .sandbox
    /// The bubblewrap executable. Default `/usr/bin/bwrap`.
    public var bubblewrap = "/usr/bin/bwrap"
    /// The `verge-sandbox-exec` helper. Default: next to the running executable.
    public var helper: String = IsolationSettings.helperNextToExecutable()
    /// An empty directory workers stage their paths over in their own mount namespaces. Default `/run/verge-sandbox`.
    public var stageRoot = "/run/verge-sandbox"
    /// The machine-wide registry of sandbox users. Default `/var/lib/verge/sandbox-users.sqlite`.
    public var usersDatabase = "/var/lib/verge/sandbox-users.sqlite"
    /// The uids/gids handed to tenants. Default 2100000000–2100999999; must not overlap `/etc/subuid`.
    public var uidRange: ClosedRange<UInt32> = SandboxUsers.defaultRange
    /// The Swift runtime libraries Swift functions link (shared read-only at the same path). Default: the ones
    /// this process itself uses.
    public var swiftRuntimeLibraries: String? = IsolationSettings.loadedSwiftRuntime()

    /// Processes and threads per worker when the manifest sets none. Default 64.
    public var defaultProcesses = 64
    /// Open files per process when the manifest sets none. Default 1024.
    public var defaultOpenFiles = 1024
    /// Largest file a worker may write when the manifest sets none. Default 64 MiB.
    public var defaultFileSizeMB = 64
    /// Size of a worker's `/tmp` when the manifest sets none. Default 64 MiB.
    public var defaultTmpMB = 64
    /// CPU bandwidth of one worker with everything it starts, in cores. Default 1.
    public var workerCPUCores: Double = 1

    /// The most a manifest may ask for; a function that asks for more does not start on this host, and its calls
    /// say which limit and what the host allows. Defaults: 1024 processes, 65536 open files, 10240 MiB files,
    /// 1024 MiB `/tmp`.
    public var maxProcesses = 1024
    public var maxOpenFiles = 65_536
    public var maxFileSizeMB = 10_240
    public var maxTmpMB = 1024

    public init() {}

    /// Why `manifest` asks for more than this host allows, or `nil`.
    func limitsProblem(for manifest: Manifest) -> String? {
        let asked: [(String, Int?, Int)] = [
            ("limits.processes", manifest.limits.processes, maxProcesses),
            ("limits.open_files", manifest.limits.openFiles, maxOpenFiles),
            ("limits.file_size_mb", manifest.limits.fileSizeMB, maxFileSizeMB),
            ("limits.tmp_mb", manifest.limits.tmpMB, maxTmpMB),
        ]
        for case (let key, let value?, let maximum) in asked where value > maximum {
            return "the function asks for \(key) = \(value); this host allows at most \(maximum)"
        }
        return nil
    }

    /// The sandbox limits of `manifest`'s workers: its own where it sets them, the host's defaults elsewhere.
    func limits(for manifest: Manifest) -> SandboxLimits {
        SandboxLimits(
            memoryBytes: Int64(manifest.memoryMB) << 20,
            processes: manifest.limits.processes ?? defaultProcesses,
            openFiles: manifest.limits.openFiles ?? defaultOpenFiles,
            fileSizeBytes: Int64(manifest.limits.fileSizeMB ?? defaultFileSizeMB) << 20,
            tmpBytes: Int64(manifest.limits.tmpMB ?? defaultTmpMB) << 20,
            cpuCores: workerCPUCores
        )
    }

    static func helperNextToExecutable() -> String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("verge-sandbox-exec")
            .path
    }

    /// The directory of the `libswiftCore.so` mapped into this process, if it links the Swift runtime dynamically.
    static func loadedSwiftRuntime() -> String? {
        guard let maps = KernelFile.read("/proc/self/maps") else { return nil }
        for line in maps.split(separator: "\n") where line.hasSuffix("/libswiftCore.so") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            return (String(line[slash...]) as NSString).deletingLastPathComponent
        }
        return nil
    }
}
