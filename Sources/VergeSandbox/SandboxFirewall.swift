import Foundation
import VergeCore

#if canImport(Glibc)
import Glibc
#endif

/// The firewall rules that keep the sandbox users' sockets off the host's own addresses. A worker with outbound
/// network reaches other machines through slirp4netns, which runs as the tenant's user and connects from the host's
/// network namespace; without these rules it could reach everything listening on the host — its loopback, the
/// control plane, the gateway, other workers' hosts on the same machine.
///
/// In the `filter` table of iptables and ip6tables: a chain `VERGE-SANDBOX` holding
/// `-m owner --uid-owner FIRST-LAST -m addrtype --dst-type LOCAL -j REJECT`, jumped to first thing from `OUTPUT`.
/// Installing is idempotent (a rule already there is not added again; nothing is ever flushed, so hosts starting
/// side by side never open a gap), and the rules stay when the host exits: they concern only the sandbox users,
/// which every host on the machine shares, and removing them under a running neighbour would unprotect it.
struct SandboxFirewall: Sendable {
    static let chain = "VERGE-SANDBOX"

    /// The tools, `iptables` first; `ip6tables` only where the kernel has IPv6.
    let tools: [String]
    let uidRange: ClosedRange<UInt32>

    init(configuration: SandboxConfiguration) {
        self.init(
            range: configuration.uidRange, iptables: configuration.iptables, ip6tables: configuration.ip6tables)
    }

    init(range: ClosedRange<UInt32>, iptables: String = "/usr/sbin/iptables", ip6tables: String = "/usr/sbin/ip6tables")
    {
        var tools = [iptables]
        if FileManager.default.fileExists(atPath: "/proc/net/if_inet6") { tools.append(ip6tables) }
        self.tools = tools
        self.uidRange = range
    }

    /// The rule in ``chain``.
    var rule: [String] {
        [
            "-m", "owner", "--uid-owner", "\(uidRange.lowerBound)-\(uidRange.upperBound)",
            "-m", "addrtype", "--dst-type", "LOCAL", "-j", "REJECT",
        ]
    }

    /// Serialises installs of every host process on the machine, so two starting at once do not both add a rule.
    static let lockFile = "/run/verge-sandbox-firewall.lock"

    /// Adds whatever is missing, then checks that everything is in place.
    func install() throws(VergeError) {
        let lock = open(Self.lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else {
            throw VergeError(
                .internalError, "cannot open \(Self.lockFile): \(String(cString: strerror(errno)))")
        }
        defer { close(lock) }  // releases the lock
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw VergeError(.internalError, "cannot lock \(Self.lockFile): \(String(cString: strerror(errno)))")
            }
        }
        for tool in tools {
            guard access(tool, X_OK) == 0 else {
                throw VergeError(.internalError, "\(tool) is missing (install Debian's iptables)")
            }
            if HelperCommand.run(tool, ["-w", "-n", "-L", Self.chain]).status != 0 {
                let created = HelperCommand.run(tool, ["-w", "-N", Self.chain])
                // Another host may have created it meanwhile.
                if created.status != 0 && HelperCommand.run(tool, ["-w", "-n", "-L", Self.chain]).status != 0 {
                    throw failure(tool, ["-N", Self.chain], created.output)
                }
            }
            if HelperCommand.run(tool, ["-w", "-C", Self.chain] + rule).status != 0 {
                let added = HelperCommand.run(tool, ["-w", "-A", Self.chain] + rule)
                if added.status != 0 { throw failure(tool, ["-A", Self.chain] + rule, added.output) }
            }
            if HelperCommand.run(tool, ["-w", "-C", "OUTPUT", "-j", Self.chain]).status != 0 {
                let inserted = HelperCommand.run(tool, ["-w", "-I", "OUTPUT", "1", "-j", Self.chain])
                if inserted.status != 0 {
                    throw failure(tool, ["-I", "OUTPUT", "1", "-j", Self.chain], inserted.output)
                }
            }
        }
        try verify()
    }

    /// Throws unless every rule is in place (an operator's firewall reload may have removed them).
    func verify() throws(VergeError) {
        for tool in tools {
            for arguments in [["-C", Self.chain] + rule, ["-C", "OUTPUT", "-j", Self.chain]] {
                let checked = HelperCommand.run(tool, ["-w"] + arguments)
                guard checked.status == 0 else {
                    let detail = checked.output.isEmpty ? "status \(checked.status)" : checked.output
                    throw VergeError(
                        .internalError,
                        "the firewall rule `\(tool) \(arguments.joined(separator: " "))` is not in place "
                            + "(\(detail)); restart the host to install it")
                }
            }
        }
    }

    private func failure(_ tool: String, _ arguments: [String], _ output: String) -> VergeError {
        VergeError(
            .internalError,
            "cannot install the firewall rule `\(tool) \(arguments.joined(separator: " "))`: \(output). Install "
                + "Debian's iptables with the owner and addrtype matches (kernel modules xt_owner, xt_addrtype, "
                + "xt_REJECT)")
    }
}
