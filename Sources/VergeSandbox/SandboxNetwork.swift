/// What a worker may reach on the network.
public enum SandboxNetwork: String, Sendable, CaseIterable {
    /// Nothing: its own network namespace with only `lo`.
    case none
    /// Outbound connections through slirp4netns (a user-space network stack, `tap0` at 10.0.2.100/24) attached to
    /// its network namespace; the host's firewall keeps it off the host's own addresses.
    case outbound
}
