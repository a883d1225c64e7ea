import VergeBundle
import VergeCore
import VergeSupervisor

/// How to start a worker for a function version: the command, its environment and its descriptors.
/// Only what is listed here reaches the worker; nothing of the host's own environment is inherited.
struct WorkerLaunchPlan: Sendable {
    var executable: String
    var arguments: [String]
    var environment: [String: String]
    var workingDirectory: String
    /// The user the workers run as (see `WorkerIdentity`); `nil` keeps the host's.
    var credentials: ProcessSpec.Credentials?

    init(
        manifest: Manifest, bundleDirectory: String, configuration: HostConfiguration,
        credentials: ProcessSpec.Credentials?, secrets: [String: String] = [:]
    ) {
        self.credentials = credentials
        var environment = manifest.env
        environment.merge(secrets) { _, secret in secret }  // then PATH, HOME… and VERGE_* below win over both
        environment["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        environment["LANG"] = "C.UTF-8"
        environment["HOME"] = "/tmp"
        environment["TMPDIR"] = "/tmp"
        environment["VERGE_FD"] = "3"
        environment["VERGE_PROTOCOL"] = "1"
        environment["VERGE_BUNDLE_DIR"] = bundleDirectory
        environment["VERGE_ENTRY"] = manifest.entry
        environment["VERGE_FUNCTION"] = manifest.name
        switch manifest.runtime {
        case .python:
            environment["VERGE_HANDLER"] = manifest.handler
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
            self.executable = configuration.python
            self.arguments = ["-I", "-S", configuration.runtimeDirectory + "/python/verge_worker.py"]
        case .swift:
            self.executable = bundleDirectory + "/bin/" + manifest.entry
            self.arguments = []
        }
        self.environment = environment
        self.workingDirectory = bundleDirectory
    }

    /// The process specification with the worker channel at fd 3 and the log pipes at fds 1 and 2.
    func processSpec(channel: Int32, stdout: Int32, stderr: Int32) -> ProcessSpec {
        ProcessSpec(
            executable: executable,
            arguments: arguments,
            environment: environment,
            workingDirectory: workingDirectory,
            fileDescriptors: [nil, stdout, stderr, channel],
            newProcessGroup: true,
            credentials: credentials
        )
    }
}
