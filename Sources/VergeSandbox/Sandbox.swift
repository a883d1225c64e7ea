import CVergeSeccomp
import Foundation
import Logging
import VergeCore

#if canImport(Glibc)
import Glibc
#endif

/// What a host needs to start workers in sandboxes: checked once at start-up (``prepare(_:logger:)`` refuses,
/// saying what to configure, when any part is missing), then used for every worker (``launch(_:)``).
public final class Sandbox: Sendable {
    public let configuration: SandboxConfiguration
    public let cgroups: CgroupHierarchy
    let users: SandboxUsers
    let seccomp: [UInt8]
    let firewall: SandboxFirewall
    /// Why this host cannot give workers outbound network, or `nil` when it can.
    public let outboundProblem: String?

    private init(
        configuration: SandboxConfiguration, cgroups: CgroupHierarchy, users: SandboxUsers, seccomp: [UInt8],
        outboundProblem: String?
    ) {
        self.configuration = configuration
        self.cgroups = cgroups
        self.users = users
        self.seccomp = seccomp
        self.firewall = SandboxFirewall(configuration: configuration)
        self.outboundProblem = outboundProblem
    }

    /// Checks every part of the sandbox and runs one sandboxed `/usr/bin/true` end to end. Outbound network is
    /// checked too (slirp4netns, the firewall rules, one sandbox with it end to end), but a host without it still
    /// starts: it refuses only the workers of functions that ask for it (``outboundProblem`` says why).
    public static func prepare(_ configuration: SandboxConfiguration, logger: Logger) throws(VergeError) -> Sandbox {
        func refuse(_ reason: String) -> VergeError {
            VergeError(
                .internalError,
                "cannot sandbox workers: \(reason). Fix this, or run the host with --isolation none to run functions "
                    + "without a sandbox (not for code you do not trust)")
        }
        guard geteuid() == 0 else {
            throw refuse("the host must run as root to give each tenant its own user and each worker its own cgroup")
        }
        guard access(configuration.bubblewrap, X_OK) == 0 else {
            throw refuse("\(configuration.bubblewrap) is missing (install Debian's bubblewrap)")
        }
        guard access(configuration.helper, X_OK) == 0 else {
            throw refuse("the helper \(configuration.helper) is missing (build the verge-sandbox-exec product)")
        }
        let seccomp: [UInt8]
        do { seccomp = try SeccompPolicy.program() } catch { throw refuse(error.message) }
        let cgroups: CgroupHierarchy
        do {
            cgroups = try CgroupHierarchy.prepare(hostName: configuration.hostName)
        } catch {
            throw refuse(error.message)
        }
        cgroups.removeStale()
        let users: SandboxUsers
        do {
            users = try SandboxUsers(
                path: configuration.usersDatabase, scope: configuration.scope, range: configuration.uidRange)
        } catch {
            throw refuse(error.message)
        }
        do {
            try FileManager.default.createDirectory(
                atPath: configuration.stageRoot, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755])
        } catch {
            throw refuse("cannot create \(configuration.stageRoot): \(error.localizedDescription)")
        }
        let basic = Sandbox(
            configuration: configuration, cgroups: cgroups, users: users, seccomp: seccomp,
            outboundProblem: "not checked yet")
        do {
            try basic.probe()
        } catch {
            throw refuse(error.message)
        }
        var outboundProblem = basic.outboundPrerequisitesProblem()
        var sandbox = Sandbox(
            configuration: configuration, cgroups: cgroups, users: users, seccomp: seccomp,
            outboundProblem: outboundProblem)
        if outboundProblem == nil {
            do {
                try sandbox.probe(network: .outbound)
            } catch {
                outboundProblem = "a test sandbox with outbound network failed: \(error.message)"
                sandbox = Sandbox(
                    configuration: configuration, cgroups: cgroups, users: users, seccomp: seccomp,
                    outboundProblem: outboundProblem)
            }
        }
        logger.info(
            "workers run in sandboxes",
            metadata: [
                "sandbox.cgroup": "\(cgroups.version.rawValue)", "sandbox.bubblewrap": "\(configuration.bubblewrap)",
                "sandbox.outbound": "\(outboundProblem == nil ? "available" : "unavailable")",
            ])
        if let outboundProblem {
            logger.warning(
                "functions with \"network\": \"outbound\" will be refused on this host",
                metadata: ["reason": "\(outboundProblem)"])
        }
        return sandbox
    }

    /// Why outbound network cannot work here (slirp4netns missing, firewall rules not installable), or `nil`.
    private func outboundPrerequisitesProblem() -> String? {
        guard access(configuration.slirp4netns, X_OK) == 0 else {
            return "\(configuration.slirp4netns) is missing (install Debian's slirp4netns)"
        }
        do {
            try firewall.install()
        } catch {
            return error.message
        }
        return nil
    }

    /// Prepares one worker: its cgroup (limits applied), its seccomp program on a pipe, and the command that
    /// joins the cgroup, drops to the tenant's user and runs bubblewrap. The caller spawns ``SandboxLaunch/executable``
    /// with ``SandboxLaunch/arguments`` and descriptor ``SandboxLaunch/seccompDescriptor`` at the child's fd
    /// ``SandboxLaunch/seccompChildDescriptor``, then calls ``SandboxLaunch/spawned()``.
    ///
    /// With `parked`, the worker takes that helper and its cgroup instead (see ``ParkedHelper``): the function's
    /// limits are applied to the cgroup here, and ``SandboxLaunch/arguments`` are the options the helper is sent
    /// (``ParkedHelper/start(arguments:descriptors:onExit:)``). A failure here discards the helper.
    public func launch(_ spec: SandboxSpec, parked: ParkedHelper? = nil) throws(VergeError) -> SandboxLaunch {
        do {
            return try makeLaunch(spec, parked: parked)
        } catch {
            parked?.discard()
            throw error
        }
    }

    private func makeLaunch(_ spec: SandboxSpec, parked: ParkedHelper?) throws(VergeError) -> SandboxLaunch {
        if spec.network == .outbound {
            // Fail closed: never without the network stack, never without the firewall rules.
            if let outboundProblem {
                throw VergeError(
                    .initFailed, "this host cannot give functions outbound network: \(outboundProblem)")
            }
            do {
                try firewall.verify()
            } catch {
                throw VergeError(.initFailed, "this host cannot give functions outbound network: \(error.message)")
            }
        }
        let id = try users.id(for: spec.tenant)
        let cgroup: WorkerCgroup
        if let parked {
            // The group was made empty of limits for a worker not known yet: the function's limits, before
            // anything of it runs.
            guard spec.inheritedDescriptors == 4 else {
                throw VergeError(.internalError, "a parked helper passes exactly stdout, stderr and the channel")
            }
            cgroup = parked.adopt(name: spec.workerName)
            try cgroup.apply(spec.limits)
        } else {
            cgroup = try cgroups.makeGroup(name: spec.workerName, limits: spec.limits)
        }
        let seccompDescriptor: Int32
        do {
            seccompDescriptor = try Self.pipe(containing: seccomp)
        } catch {
            if parked == nil { cgroup.remove() }
            throw error
        }
        var staged: [(source: String, name: String)] = [(spec.bundleDirectory, "function")]
        if let runtime = spec.runtimeDirectory { staged.append((runtime, "runtime")) }
        for (index, directory) in spec.sharedDirectories.enumerated() { staged.append((directory, "shared\(index)")) }

        // The worker's environment reaches bubblewrap on a descriptor (`--args`), never through the environment
        // of the helper, which runs as root (a manifest's LD_PRELOAD must not run there), nor on a command line
        // that `ps` shows (secrets are in it).
        let argsDescriptor: Int32
        do {
            argsDescriptor = try Self.file(containing: BubblewrapCommand.environmentArguments(spec.environment))
        } catch {
            close(seccompDescriptor)
            if parked == nil { cgroup.remove() }
            throw error
        }
        let childDescriptor = spec.inheritedDescriptors
        let argsChildDescriptor = childDescriptor + 1
        // A parked helper has joined its cgroup and closed what it must not keep already.
        var arguments: [String] = []
        if parked == nil {
            arguments += ["--keep-fds", "\(argsChildDescriptor + 1)"]
            for file in cgroup.joinFiles { arguments += ["--join", file] }
        }
        arguments += [
            "--rlimit", "nofile=\(spec.limits.openFiles)",
            "--rlimit", "fsize=\(spec.limits.fileSizeBytes)",
            "--rlimit", "core=0",
            "--stage-root", configuration.stageRoot,
        ]
        for (source, name) in staged { arguments += ["--stage", source, name] }
        arguments += ["--user", "\(id):\(id)", "--parent", "\(getpid())"]
        // A parked helper has made the worker's network namespace already (see `verge-sandbox-exec`); a worker with
        // outbound network gets bubblewrap's, which slirp4netns attaches to.
        let helperMadeNetwork = parked != nil && spec.network != .outbound
        if helperMadeNetwork { arguments.append("--private-net") }
        var network: (infoDescriptor: Int, blockDescriptor: Int)?
        if spec.network == .outbound {
            // The helper makes these two pipes; the descriptors follow the environment's.
            network = (argsChildDescriptor + 1, argsChildDescriptor + 2)
            arguments += [
                "--outbound", configuration.slirp4netns, "\(argsChildDescriptor + 1)", "\(argsChildDescriptor + 2)",
            ]
        }
        arguments += ["--", configuration.bubblewrap]
        arguments += BubblewrapCommand.arguments(
            spec: spec, stageRoot: configuration.stageRoot, staged: staged, seccompDescriptor: childDescriptor,
            argsDescriptor: argsChildDescriptor, network: network, unshareNetwork: !helperMadeNetwork)
        return SandboxLaunch(
            executable: configuration.helper, arguments: arguments,
            seccompDescriptor: seccompDescriptor, seccompChildDescriptor: childDescriptor,
            argsDescriptor: argsDescriptor, argsChildDescriptor: argsChildDescriptor, cgroup: cgroup, uid: id,
            parked: parked)
    }

    /// An anonymous file holding `bytes`, positioned at its start, close-on-exec (any size, unlike a pipe).
    static func file(containing bytes: [UInt8]) throws(VergeError) -> Int32 {
        let fd = verge_memfd("verge-sandbox")
        guard fd >= 0 else {
            throw VergeError(.internalError, "cannot create a memory file: \(String(cString: strerror(errno)))")
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else {
                close(fd)
                throw VergeError(.internalError, "cannot write the sandbox's arguments")
            }
            offset += written
        }
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    /// A pipe holding `bytes` (written whole, write end closed); returns the read end, close-on-exec.
    static func pipe(containing bytes: [UInt8]) throws(VergeError) -> Int32 {
        var fds: [Int32] = [-1, -1]
        guard verge_pipe_cloexec(&fds) == 0 else {
            throw VergeError(.internalError, "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        defer { close(fds[1]) }
        // A seccomp program is a few hundred bytes: far below the pipe's buffer, so this never blocks.
        let written = bytes.withUnsafeBytes { Glibc.write(fds[1], $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            close(fds[0])
            throw VergeError(.internalError, "cannot write the seccomp program to its pipe")
        }
        return fds[0]
    }

    /// Runs `/usr/bin/true` through the whole sandbox, so a host that cannot build one refuses to start instead of
    /// failing on its first call.
    func probe(network: SandboxNetwork = .none) throws(VergeError) {
        // Unique: sandboxes may be prepared side by side in one process.
        let unique = UUID().uuidString.prefix(8).lowercased()
        // A fresh directory of our own (mkdtemp: never an existing path or a link someone planted).
        var template = Array((NSTemporaryDirectory() + "verge-sandbox-probe.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw VergeError(.internalError, "cannot create a directory for the test sandbox: \(String(cString: strerror(errno)))")
        }
        let bundle = String(cString: made)
        defer { rmdir(bundle) }
        chmod(bundle, 0o755)  // the tenant's user enters it; /tmp's sticky bit keeps it ours
        let spec = SandboxSpec(
            workerName: "probe-\(unique)", tenant: "verge-probe", bundleDirectory: bundle, runtimeDirectory: nil,
            sharedDirectories: [], systemPaths: SystemView.base + ["/usr/bin/true"], command: ["/usr/bin/true"], environment: ["PATH": "/usr/bin:/bin"],
            limits: SandboxLimits(
                memoryBytes: 64 << 20, processes: 16, openFiles: 64, fileSizeBytes: 1 << 20, tmpBytes: 1 << 20),
            inheritedDescriptors: 3, network: network
        )
        let launch = try launch(spec)
        defer { launch.cgroup.remove() }
        let (status, output) = launch.runToCompletion()
        guard status == 0 else {
            throw VergeError(
                .internalError,
                "a test sandbox failed (status \(status)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}

/// One worker's prepared sandbox.
public struct SandboxLaunch: Sendable {
    public let executable: String
    public let arguments: [String]
    /// The helper's environment: empty. It runs as root; the worker's environment reaches bubblewrap through
    /// ``argsDescriptor``.
    public var environment: [String: String] { [:] }
    /// The read end of the pipe holding the seccomp program (close-on-exec here); the child gets it at
    /// ``seccompChildDescriptor``.
    public let seccompDescriptor: Int32
    public let seccompChildDescriptor: Int
    /// A memory file with bubblewrap's `--clearenv --setenv …` arguments (close-on-exec here); the child gets it at
    /// ``argsChildDescriptor``.
    public let argsDescriptor: Int32
    public let argsChildDescriptor: Int
    public let cgroup: WorkerCgroup
    /// The worker's uid (and gid).
    public let uid: UInt32
    /// The helper started ahead that this worker takes, or `nil` when ``executable`` is to be spawned.
    public let parked: ParkedHelper?

    /// Closes the host's copies of the descriptors once the child has its own.
    public func spawned() {
        close(seccompDescriptor)
        close(argsDescriptor)
    }

    /// Runs the command with stdout and stderr captured; returns the exit status (128 + signal when killed) and
    /// the output. For the start-up probe only: it blocks.
    func runToCompletion() -> (Int32, String) {
        HelperCommand.run(
            executable, arguments, environment: environment.map { "\($0.key)=\($0.value)" },
            descriptors: [
                (seccompDescriptor, Int32(seccompChildDescriptor)), (argsDescriptor, Int32(argsChildDescriptor)),
            ],
            afterSpawn: spawned, onChildExit: { cgroup.killAll() })
    }
}
