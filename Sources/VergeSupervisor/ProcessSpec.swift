/// What to start: the executable, its arguments, its whole environment, its working directory and its descriptors.
public struct ProcessSpec: Sendable {
    /// A path; when it has no "/", it is searched on the `PATH` of ``environment`` (execvp semantics; without a
    /// `PATH`, the C library's default search path).
    public var executable: String
    /// `argv[1...]`; `argv[0]` is ``executable``.
    public var arguments: [String]
    /// The child's whole environment: nothing else is inherited.
    public var environment: [String: String]
    public var workingDirectory: String
    /// The child's descriptors: index i becomes the child's fd i. `nil` is /dev/null for 0–2; for 3 and above the
    /// child gets nothing there (every descriptor Verge opens is close-on-exec).
    public var fileDescriptors: [Int32?]
    /// Start the child as leader of a new session and process group (setsid) so the whole group can be signalled.
    public var newProcessGroup: Bool
    /// Run the child as this user and group (supplementary groups dropped). Needs a privileged parent; `nil` keeps
    /// the parent's identity.
    public var credentials: Credentials?

    public struct Credentials: Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32

        public init(uid: UInt32, gid: UInt32) {
            self.uid = uid
            self.gid = gid
        }
    }

    public init(
        executable: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String,
        fileDescriptors: [Int32?],
        newProcessGroup: Bool = true,
        credentials: Credentials? = nil
    ) {
        self.credentials = credentials
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.fileDescriptors = fileDescriptors
        self.newProcessGroup = newProcessGroup
    }
}

/// How a process ended.
public enum ProcessExit: Sendable, Equatable, CustomStringConvertible {
    /// It exited with this status.
    case exited(Int32)
    /// It was terminated by this signal.
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .signaled(let signal): "terminated by signal \(signal)"
        }
    }
}
