import Foundation
import VergeBundle
import VergeCore
import VergeSandbox
import VergeSupervisor

/// How to start a worker for a function version: the command, its environment, its limits and — on a sandboxed
/// host — its sandbox. Only what is listed here reaches the worker; nothing of the host's own environment is
/// inherited.
struct WorkerLaunchPlan: Sendable {
    let tenant: String
    /// The command as the worker sees it: paths inside the sandbox when there is one.
    let command: [String]
    let environment: [String: String]
    let bundleDirectory: String
    let runtimeDirectory: String?
    let sharedDirectories: [String]
    /// What the sandbox sees of the host system (``SystemView``).
    let systemPaths: [String]
    let limits: SandboxLimits
    /// What the worker may reach on the network (sandboxed hosts only).
    let network: SandboxNetwork
    /// CPU time one call may use; `nil` leaves only the wall deadline.
    let cpuLimit: Duration?
    let sandbox: Sandbox?
    /// Why this function cannot start on this host (it asks for more than the host's maxima), or `nil`.
    let refusal: String?

    init(deployment: Deployment, configuration: HostConfiguration, sandbox: Sandbox?) {
        let manifest = deployment.manifest
        self.tenant = deployment.tenant
        self.sandbox = sandbox
        self.bundleDirectory = deployment.bundleDirectory
        self.limits = configuration.isolationSettings.limits(for: manifest)
        self.refusal = configuration.isolationSettings.limitsProblem(for: manifest)
        self.cpuLimit = manifest.limits.cpuMs.map { .milliseconds($0) }
        self.network = manifest.network == .outbound ? .outbound : .none
        let bundle = sandbox == nil ? deployment.bundleDirectory : SandboxPaths.function
        var environment = manifest.env
        // The function's secrets; PATH, HOME… and VERGE_* below win over both.
        environment.merge(deployment.secrets) { _, secret in secret }
        environment["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        environment["LANG"] = "C.UTF-8"
        environment["HOME"] = "/tmp"
        environment["TMPDIR"] = "/tmp"
        environment["VERGE_FD"] = "3"
        environment["VERGE_PROTOCOL"] = "1"
        environment["VERGE_BUNDLE_DIR"] = bundle
        environment["VERGE_ENTRY"] = manifest.entry
        environment["VERGE_FUNCTION"] = manifest.name
        var shared: [String] = []
        var system = SystemView.base
        switch manifest.runtime {
        case .python:
            environment["VERGE_HANDLER"] = manifest.handler
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
            let runtime = sandbox == nil ? configuration.runtimeDirectory : SandboxPaths.runtime
            var python = configuration.python
            if sandbox != nil {
                // Inside the sandbox only the system view is there: an interpreter elsewhere brings its prefix.
                python = URL(fileURLWithPath: python).resolvingSymlinksInPath().path
                if let prefix = Self.prefixOutsideUsr(python) {
                    shared.append(prefix)
                } else {
                    system += SystemView.python(python)
                }
            }
            self.command = [python, "-I", "-S", runtime + "/python/verge_worker.py"]
            self.runtimeDirectory = configuration.runtimeDirectory
        case .swift:
            self.command = [bundle + "/bin/" + manifest.entry]
            self.runtimeDirectory = nil
            // The toolchain's runtime libraries, found through the binary's RUNPATH at the same path inside.
            if sandbox != nil, let libraries = configuration.isolationSettings.swiftRuntimeLibraries,
                !libraries.hasPrefix("/usr/")
            {
                shared.append(libraries)
            }
        }
        self.sharedDirectories = shared
        self.systemPaths = system
        self.environment = environment
    }

    /// For a path outside `/usr`, the directory to share so it works inside the sandbox: an interpreter's install
    /// prefix (the parent of its `bin/`), or the directory itself.
    static func prefixOutsideUsr(_ path: String) -> String? {
        guard !path.hasPrefix("/usr/") else { return nil }
        let url = URL(fileURLWithPath: path)
        let directory = url.hasDirectoryPath ? url : url.deletingLastPathComponent()
        let prefix = directory.lastPathComponent == "bin" ? directory.deletingLastPathComponent() : directory
        return prefix.path
    }

    /// A worker about to be spawned: its process specification and, when sandboxed, its cgroup.
    struct Prepared: Sendable {
        var spec: ProcessSpec
        var cgroup: WorkerCgroup?
        var sandbox: SandboxLaunch?
    }

    /// The process specification with the worker channel at fd 3 and the log pipes at fds 1 and 2; sandboxed, the
    /// worker's cgroup is made here (named `workerName`) and the seccomp program rides on fd 4. With `parked` (a
    /// sandboxed host's helper started ahead), the worker takes that helper and its cgroup instead; the spec's
    /// arguments are then what the helper is sent. `parked` is discarded when this throws.
    func prepare(
        workerName: String, channel: Int32, stdout: Int32, stderr: Int32, parked: ParkedHelper? = nil
    ) throws(VergeError) -> Prepared {
        if let refusal {
            parked?.discard()
            throw VergeError(.initFailed, refusal)
        }
        guard let sandbox else {
            parked?.discard()
            return Prepared(
                spec: ProcessSpec(
                    executable: command[0], arguments: Array(command.dropFirst()), environment: environment,
                    workingDirectory: bundleDirectory, fileDescriptors: [nil, stdout, stderr, channel],
                    newProcessGroup: true),
                cgroup: nil, sandbox: nil)
        }
        let launch = try sandbox.launch(
            SandboxSpec(
                workerName: workerName, tenant: tenant, bundleDirectory: bundleDirectory,
                runtimeDirectory: runtimeDirectory, sharedDirectories: sharedDirectories, systemPaths: systemPaths,
                command: command, environment: environment, limits: limits, inheritedDescriptors: 4, network: network),
            parked: parked)
        return Prepared(
            spec: ProcessSpec(
                executable: launch.executable, arguments: launch.arguments, environment: launch.environment,
                workingDirectory: "/", fileDescriptors: [nil, stdout, stderr, channel, launch.seccompDescriptor, launch.argsDescriptor],
                newProcessGroup: true),
            cgroup: launch.cgroup, sandbox: launch)
    }
}
