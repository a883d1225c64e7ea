import Foundation

/// The bubblewrap arguments of one worker: a new user, PID, IPC, UTS, network and cgroup namespace; a root that
/// holds the system view (``SystemView``: libraries, loader, locale, time zones, the runtime's interpreter; not the
/// rest of `/usr`) read-only, the loader cache, a fresh `/proc` and `/dev`, a private size-limited `/tmp`, the
/// bundle and runtime read-only, and nothing else of the host; no nested user namespaces; the seccomp program from
/// a descriptor; killed with its parent. With outbound network, bubblewrap reports the sandbox's pid on one
/// descriptor and waits on another until the network is attached (see `verge-sandbox-exec`).
enum BubblewrapCommand {
    /// Host paths bound read-only at the same place when they exist (the dynamic loader's cache, the time zone).
    static let etcFiles = ["/etc/ld.so.cache", "/etc/localtime"]

    /// The top-level entries that merged-/usr systems keep as links into `/usr`.
    static let usrLinks = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]

    /// `--clearenv` and a `--setenv NAME VALUE` per variable, NUL-terminated, as `bwrap --args FD` reads them.
    static func environmentArguments(_ environment: [String: String]) -> [UInt8] {
        var arguments = ["--clearenv"]
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) { arguments += ["--setenv", name, value] }
        return arguments.flatMap { Array($0.utf8) + [0] }
    }

    /// `stage` maps each staged host path to its name under the stage root. Without `unshareNetwork`, the
    /// sandbox stays in the network namespace bubblewrap starts in: the one a parked helper made for the worker.
    static func arguments(
        spec: SandboxSpec, stageRoot: String, staged: [(source: String, name: String)], seccompDescriptor: Int,
        argsDescriptor: Int, network: (infoDescriptor: Int, blockDescriptor: Int)? = nil, unshareNetwork: Bool = true
    ) -> [String] {
        var arguments = [
            "--args", "\(argsDescriptor)", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        ]
        if unshareNetwork { arguments.append("--unshare-net") }
        arguments += [
            "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session",
            "--hostname", "verge",
        ]
        for path in spec.systemPaths { arguments += ["--ro-bind", path, path] }
        for link in usrLinks {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) {
                arguments += ["--symlink", target, link]
            } else if FileManager.default.fileExists(atPath: link) {
                arguments += ["--ro-bind", link, link]
            }
        }
        for file in etcFiles where FileManager.default.fileExists(atPath: file) {
            arguments += ["--ro-bind", file, file]
        }
        arguments += [
            "--proc", "/proc",
            "--dev", "/dev",
            "--perms", "1777", "--size", "\(spec.limits.tmpBytes)", "--tmpfs", "/tmp",
        ]
        for (source, name) in staged {
            let inside: String
            if source == spec.bundleDirectory {
                inside = SandboxPaths.function
            } else if source == spec.runtimeDirectory {
                inside = SandboxPaths.runtime
            } else {
                inside = source
            }
            arguments += ["--ro-bind", stageRoot + "/" + name, inside]
        }
        arguments += [
            // The sandbox's own root holds nothing to write: only /tmp (sized) is writable.
            "--remount-ro", "/",
            "--chdir", SandboxPaths.function,
            "--seccomp", "\(seccompDescriptor)",
        ]
        if let network {
            arguments += ["--info-fd", "\(network.infoDescriptor)", "--block-fd", "\(network.blockDescriptor)"]
        }
        arguments += ["--"]
        return arguments + spec.command
    }
}
