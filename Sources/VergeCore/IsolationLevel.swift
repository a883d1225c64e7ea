/// How strongly a host separates the functions it runs from itself and from each other; every status surface
/// (`verge hosts`, `/v1/hosts`, the host's start-up log) shows it.
public enum IsolationLevel: String, Codable, Sendable, CaseIterable {
    /// Each worker runs in a sandbox of its function version: bubblewrap namespaces (mount, PID, network, IPC,
    /// UTS, user), a seccomp filter, cgroup limits, and an unprivileged user of its tenant.
    case sandbox
    /// Workers run as plain processes of the host's user, with no sandbox and no enforced limits. Only with an
    /// explicit operator flag (`--isolation none`); never chosen by Verge on its own.
    case none
}
