import CLibUV
import Logging
import Synchronization
import VergeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts worker processes, reports their exits, signals them and runs timers, all on a ``SupervisorLoop``.
///
/// Several supervisors may share one loop; each counts and signals only the processes it spawned.
public final class Supervisor: Sendable {
    private let loop: SupervisorLoop
    private let logger: Logger
    /// Spawned, not yet reaped processes: pid → whether it leads its own process group.
    private let live = Mutex<[Int32: Bool]>([:])

    /// Deadlines of calls in progress, swept together on the loop (see ``DeadlineSweep``).
    public let deadlines: DeadlineSweep

    public init(loop: SupervisorLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
        self.deadlines = DeadlineSweep { [loop] delay, action in
            let timer = SupervisorTimer(loop: loop.core, action: action)
            let milliseconds = delay.roundedUpMilliseconds
            _ = loop.submit { timer.arm(milliseconds: milliseconds) }
        }
    }

    /// Number of live (spawned, not yet reaped) processes.
    public var liveProcessCount: Int {
        live.withLock { $0.count }
    }

    /// Spawns `spec` on the loop thread and returns its pid.
    ///
    /// `onExit` is called exactly once, on the loop thread, when the process has been reaped: keep it short (it may
    /// hop elsewhere). If the loop is shut down first, the process is no longer watched and `onExit` is not called.
    ///
    /// - Throws: `VergeError(.initFailed, "cannot start '<exe>': <reason>")` when the process cannot be started
    ///   (missing executable, no permission, bad working directory, …); `onExit` is then never called.
    ///   `VergeError(.shuttingDown, …)` when the loop is shut down.
    public func spawn(
        _ spec: ProcessSpec,
        onExit: @escaping @Sendable (ProcessExit) -> Void
    ) async throws(VergeError) -> Int32 {
        let result: Result<Int32, VergeError> = await withCheckedContinuation { continuation in
            let accepted = loop.submit {
                continuation.resume(returning: self.spawnOnLoop(spec, onExit: onExit))
            }
            if !accepted {
                continuation.resume(returning: .failure(VergeError(.shuttingDown, "the supervisor loop is shut down")))
            }
        }
        return try result.get()
    }

    /// Sends `signal` to the process, or to its whole process group (`kill(-pid)`) when `group`. Safe from any thread.
    ///
    /// A single process is signalled only while it is live (spawned here and not yet reaped), so a recycled pid is
    /// never hit. A group is signalled even after its leader was reaped, to reach what it left behind; when the
    /// process was spawned without ``ProcessSpec/newProcessGroup``, `group` signals just the process. A vanished
    /// target (ESRCH) is ignored.
    public func signal(pid: Int32, _ signal: Int32, group: Bool = true) {
        guard pid > 0 else { return }  // kill(0) or kill(-1) would hit the host itself
        let (target, rc, code) = live.withLock { live -> (Int32, Int32, Int32) in
            let leadsGroup = live[pid]
            let target: Int32
            if group && leadsGroup != false {
                target = -pid
            } else if leadsGroup != nil {
                target = pid
            } else {
                return (pid, -1, ESRCH)
            }
            // Under the lock: the exit callback cannot forget the pid (and the kernel recycle it) meanwhile.
            let rc = kill(target, signal)
            return (target, rc, rc == 0 ? 0 : errno)
        }
        var metadata: Logger.Metadata = [
            "worker.pid": "\(pid)", "worker.signal": "\(signal)", "worker.group": "\(target < 0)",
        ]
        if rc == 0 {
            logger.debug("signalled worker", metadata: metadata)
        } else if code != ESRCH {
            metadata["error"] = "\(String(cString: strerror(code)))"
            logger.info("cannot signal worker", metadata: metadata)
        }
    }

    /// Calls `fire` on the loop thread after `delay`, unless cancelled first.
    ///
    /// Cancelling after it fired, or twice, is harmless. If the loop is shut down first, `fire` is never called.
    public func startTimer(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> SupervisorTimer {
        let timer = SupervisorTimer(loop: loop.core, action: fire)
        let milliseconds = delay.roundedUpMilliseconds
        _ = loop.submit { timer.arm(milliseconds: milliseconds) }
        return timer
    }

    // MARK: - Loop thread

    private func spawnOnLoop(
        _ spec: ProcessSpec,
        onExit: @escaping @Sendable (ProcessExit) -> Void
    ) -> Result<Int32, VergeError> {
        let handle: UnsafeMutablePointer<uv_process_t> = allocateHandle(UV_PROCESS)
        let rc = withProcessOptions(spec) { options in
            uv_spawn(loop.core.uvLoop, handle, &options)
        }
        // Whatever the outcome, the handle is initialised and in the loop; on failure it must still be closed.
        retain(ProcessContext(supervisor: self, executable: spec.executable, onExit: onExit), in: handlePointer(handle))
        guard rc == 0 else {
            uv_close(handlePointer(handle), releaseAndFreeHandleCallback)
            let reason = String(cString: strerror(-rc))
            let metadata: Logger.Metadata = ["worker.executable": "\(spec.executable)", "error": "\(reason)"]
            logger.info("cannot start worker", metadata: metadata)
            return .failure(VergeError(.initFailed, "cannot start '\(spec.executable)': \(reason)"))
        }
        let pid = uv_process_get_pid(handle)
        live.withLock { $0[pid] = spec.newProcessGroup }
        logger.debug(
            "started worker",
            metadata: [
                "worker.pid": "\(pid)", "worker.executable": "\(spec.executable)",
                "worker.arguments": "\(spec.arguments.joined(separator: " "))",
            ])
        return .success(pid)
    }

    fileprivate func reaped(pid: Int32, exit: ProcessExit) {
        live.withLock { _ = $0.removeValue(forKey: pid) }
        logger.debug("worker exited", metadata: ["worker.pid": "\(pid)", "worker.exit": "\(exit)"])
    }
}

/// What a process handle carries back to Swift.
private final class ProcessContext {
    let supervisor: Supervisor
    let executable: String
    let onExit: @Sendable (ProcessExit) -> Void

    init(supervisor: Supervisor, executable: String, onExit: @escaping @Sendable (ProcessExit) -> Void) {
        self.supervisor = supervisor
        self.executable = executable
        self.onExit = onExit
    }
}

private func processExitCallback(_ handle: UnsafeMutablePointer<uv_process_t>?, _ status: Int64, _ signal: Int32) {
    guard let handle, let context = owner(of: handlePointer(handle), as: ProcessContext.self) else { return }
    let exit: ProcessExit = signal != 0 ? .signaled(signal) : .exited(Int32(truncatingIfNeeded: status))
    let pid = uv_process_get_pid(handle)
    uv_close(handlePointer(handle), releaseAndFreeHandleCallback)
    context.supervisor.reaped(pid: pid, exit: exit)
    context.onExit(exit)
}

/// Builds the C view of `spec` (strings, argv, envp, stdio containers) for the duration of `body`.
private func withProcessOptions<R>(_ spec: ProcessSpec, _ body: (inout uv_process_options_t) -> R) -> R {
    var allocated: [UnsafeMutablePointer<CChar>] = []
    defer { for string in allocated { free(string) } }
    func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        guard let copy = strdup(string) else { fatalError("out of memory copying a process argument") }
        allocated.append(copy)
        return copy
    }

    var argv: [UnsafeMutablePointer<CChar>?] = [cString(spec.executable)] + spec.arguments.map(cString) + [nil]
    var envp: [UnsafeMutablePointer<CChar>?] =
        spec.environment.sorted { $0.key < $1.key }.map { cString("\($0.key)=\($0.value)") } + [nil]
    var stdio: [uv_stdio_container_t] = spec.fileDescriptors.map { fd in
        var container = uv_stdio_container_t()
        if let fd {
            container.flags = UV_INHERIT_FD
            container.data.fd = fd
        } else {
            container.flags = UV_IGNORE
        }
        return container
    }
    while stdio.count < 3 { stdio.append(uv_stdio_container_t(flags: UV_IGNORE, data: .init())) }

    let file = argv[0]
    let cwd = cString(spec.workingDirectory)
    return argv.withUnsafeMutableBufferPointer { argv in
        envp.withUnsafeMutableBufferPointer { envp in
            stdio.withUnsafeMutableBufferPointer { stdio in
                var options = uv_process_options_t()
                options.exit_cb = processExitCallback
                options.file = UnsafePointer(file)
                options.args = argv.baseAddress
                options.env = envp.baseAddress
                options.cwd = UnsafePointer(cwd)
                options.flags = spec.newProcessGroup ? UInt32(UV_PROCESS_DETACHED.rawValue) : 0
                if let credentials = spec.credentials {
                    // libuv also drops supplementary groups (setgroups(0, NULL)) before changing identity.
                    options.flags |= UInt32(UV_PROCESS_SETUID.rawValue) | UInt32(UV_PROCESS_SETGID.rawValue)
                    options.uid = credentials.uid
                    options.gid = credentials.gid
                }
                options.stdio_count = Int32(stdio.count)
                options.stdio = stdio.baseAddress
                return body(&options)
            }
        }
    }
}
