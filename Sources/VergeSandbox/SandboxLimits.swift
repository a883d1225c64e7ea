/// The resource limits of one worker's sandbox. CPU time per call is not here: the host enforces it per call
/// from the worker's cgroup accounting.
public struct SandboxLimits: Sendable, Equatable {
    /// Memory of all the worker's processes together, `/tmp` included (cgroup memory limit; no swap).
    public var memoryBytes: Int64
    /// Processes and threads the worker may have at once (cgroup pids limit).
    public var processes: Int
    /// Open file descriptors per process (RLIMIT_NOFILE).
    public var openFiles: Int
    /// Largest file a process may write (RLIMIT_FSIZE); writing past it kills the process with SIGXFSZ.
    public var fileSizeBytes: Int64
    /// Size of the worker's private `/tmp`.
    public var tmpBytes: Int64
    /// CPU bandwidth of all the worker's processes together, in cores (cgroup CPU quota), so a worker cannot take
    /// the machine from its neighbours whatever it starts.
    public var cpuCores: Double

    public init(
        memoryBytes: Int64, processes: Int, openFiles: Int, fileSizeBytes: Int64, tmpBytes: Int64,
        cpuCores: Double = 1
    ) {
        self.cpuCores = cpuCores
        self.memoryBytes = memoryBytes
        self.processes = processes
        self.openFiles = openFiles
        self.fileSizeBytes = fileSizeBytes
        self.tmpBytes = tmpBytes
    }
}

/// Which limit ended a call, as usage records and error bodies name it.
public enum SandboxLimit: String, Sendable, Codable, CaseIterable {
    case memory
    case cpu
    case processes
    case fileSize = "file_size"
}
