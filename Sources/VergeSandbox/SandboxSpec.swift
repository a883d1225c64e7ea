/// One worker's sandbox: what it sees, what it runs and what it may use.
public struct SandboxSpec: Sendable {
    /// Unique among the host's live workers; names the worker's cgroup.
    public var workerName: String
    /// The tenant whose unprivileged user the worker runs as.
    public var tenant: String
    /// The function version's unpacked bundle on the host; read-only at ``SandboxPaths/function`` inside.
    public var bundleDirectory: String
    /// The in-worker runtimes on the host (e.g. `Runtime/`), read-only at ``SandboxPaths/runtime`` inside; `nil`
    /// when the function needs none (a compiled Swift function).
    public var runtimeDirectory: String?
    /// Further host directories the worker needs read-only at the same path (an interpreter's prefix outside
    /// `/usr`, the Swift runtime libraries).
    public var sharedDirectories: [String]
    /// The host system's files and directories the worker sees read-only at the same path (``SystemView``):
    /// system-owned, world-readable paths bound as they are, not staged.
    public var systemPaths: [String]
    /// The command inside the sandbox: an absolute path inside, then its arguments.
    public var command: [String]
    /// The worker's whole environment.
    public var environment: [String: String]
    public var limits: SandboxLimits
    /// Descriptors 0 … `inheritedDescriptors - 1` pass into the sandbox (stdio and the worker channel).
    public var inheritedDescriptors: Int
    /// What the worker may reach on the network.
    public var network: SandboxNetwork

    public init(
        workerName: String, tenant: String, bundleDirectory: String, runtimeDirectory: String?,
        sharedDirectories: [String], systemPaths: [String] = SystemView.base, command: [String],
        environment: [String: String], limits: SandboxLimits, inheritedDescriptors: Int = 4,
        network: SandboxNetwork = .none
    ) {
        self.workerName = workerName
        self.tenant = tenant
        self.bundleDirectory = bundleDirectory
        self.runtimeDirectory = runtimeDirectory
        self.sharedDirectories = sharedDirectories
        self.systemPaths = systemPaths
        self.command = command
        self.environment = environment
        self.limits = limits
        self.inheritedDescriptors = inheritedDescriptors
        self.network = network
    }
}

/// Where things are inside every sandbox.
public enum SandboxPaths {
    /// The function's bundle, read-only; also the working directory.
    public static let function = "/function"
    /// The in-worker runtimes, read-only.
    public static let runtime = "/verge/runtime"
}
