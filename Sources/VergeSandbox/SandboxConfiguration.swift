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
    /// The user-space network stack of workers with outbound network. Default `/usr/bin/slirp4netns` (Debian's
    /// `slirp4netns`).
    public var slirp4netns: String = "/usr/bin/slirp4netns"
    /// The firewall tools that install the rules keeping sandbox users off the host's own addresses. Defaults
    /// `/usr/sbin/iptables` and `/usr/sbin/ip6tables` (Debian's `iptables`).
    public var iptables: String = "/usr/sbin/iptables"
    public var ip6tables: String = "/usr/sbin/ip6tables"
    /// How many sandbox helpers the host keeps started ahead, each parked in a cgroup of its own, so a cold start
    /// does not wait for a cgroup to be made and joined (see ``ParkedHelper``). 0 starts every helper on demand.
    /// Default 2.
    public var parkedHelpers: Int = 2
    /// How long a helper may stay parked before the host replaces it. A parked helper made its mount namespace when
    /// it parked, so it sees the host's mounts as they were then: a volume mounted or unmounted since would otherwise
    /// stay that way for its worker (and an unmounted one busy) for as long as it waits. Default 60 s.
    public var parkedHelperMaxAge: Duration = .seconds(60)

    public init(hostName: String, scope: String, helper: String) {
        self.hostName = hostName
        self.scope = scope
        self.helper = helper
    }
}
