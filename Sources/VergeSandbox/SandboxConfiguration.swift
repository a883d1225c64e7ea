/// How a host builds its workers' sandboxes, with documented defaults (see the README's configuration table).
public struct SandboxConfiguration: Sendable {
    /// The host's name: part of its cgroup directory's name.
    public var hostName: String
    /// Tells this host's tenants apart from other hosts' in the machine-wide user registry (the host's data
    /// directory).
    public var scope: String
    /// The bubblewrap executable. Default `/usr/bin/bwrap` (Debian's `bubblewrap`).
    public var bubblewrap: String = "/usr/bin/bwrap"
    /// The `verge-sandbox-exec` helper; by default the one next to the `verge` executable.
    public var helper: String
    /// An empty directory each worker stages its bound paths over, in a mount namespace of its own (nothing is
    /// ever mounted there in the host's namespace). Default `/run/verge-sandbox`.
    public var stageRoot: String = "/run/verge-sandbox"
    /// The machine-wide registry of sandbox users. Default `/var/lib/verge/sandbox-users.sqlite`.
    public var usersDatabase: String = "/var/lib/verge/sandbox-users.sqlite"
    /// The uids (and gids) handed to tenants. Default 2100000000–2100999999.
    public var uidRange: ClosedRange<UInt32> = SandboxUsers.defaultRange

    public init(hostName: String, scope: String, helper: String) {
        self.hostName = hostName
        self.scope = scope
        self.helper = helper
    }
}
