import CVergeSeccomp
import Foundation
import Synchronization
import VergeCore
import VergeSupervisor

#if canImport(Glibc)
import Glibc
#endif

/// A `verge-sandbox-exec` started ahead of its worker (`--park`): it has joined a cgroup of its own, made for it
/// alone, and waits, still root and running nothing of any function, for the one worker it will become. Joining a
/// cgroup costs an RCU grace period on cgroup v1 (milliseconds, more on a loaded machine) and the helper's own
/// start a few more: a parked helper has paid both before a call needs a worker.
///
/// Handed out once (``ParkedHelperPool/take()``), then ``start(arguments:descriptors:onExit:)`` sends it the
/// worker's options and descriptors, after the function's limits were applied to its cgroup
/// (``Sandbox/launch(_:parked:)``): from then on it goes exactly the way of a helper started for that worker.
public final class ParkedHelper: Sendable {
    public let pid: Int32
    /// When the helper was started: from about then on, it sees the host's mounts as they were (see
    /// ``ParkedHelperPool/recycle(olderThan:now:)``).
    public let parkedAt: ContinuousClock.Instant
    /// The helper's cgroup: `parked-N` while it waits, renamed after its worker when taken (where the kernel can).
    public var cgroup: WorkerCgroup { group.withLock { $0 } }
    private let group: Mutex<WorkerCgroup>
    /// The host's end of the helper's SOCK_SEQPACKET socket; -1 once closed.
    private let control: Mutex<Int32>
    private let route: ExitRoute
    private let parked = Atomic<Bool>(false)

    /// Where the helper's exit goes: to the pool while it waits, to its worker once started.
    final class ExitRoute: Sendable {
        private let state = Mutex<(exit: ProcessExit?, handler: (@Sendable (ProcessExit) -> Void)?)>((nil, nil))

        /// Called by the supervisor once the process was reaped.
        func exited(_ status: ProcessExit) {
            let handler = state.withLock { state in
                state.exit = status
                defer { state.handler = nil }  // called once; no cycle through a handler that holds the helper
                return state.handler
            }
            handler?(status)
        }

        /// Sends the exit to `handler` from now on, or at once if it already happened.
        func route(to handler: @escaping @Sendable (ProcessExit) -> Void) {
            let exit = state.withLock { state in
                if state.exit == nil { state.handler = handler }
                return state.exit
            }
            if let exit { handler(exit) }
        }

        /// Sends the exit to `handler` from now on, unless it already happened: then returns it and `handler` never
        /// hears of it.
        func take(for handler: @escaping @Sendable (ProcessExit) -> Void) -> ProcessExit? {
            state.withLock { state in
                if state.exit == nil { state.handler = handler }
                return state.exit
            }
        }

        var exit: ProcessExit? { state.withLock { $0.exit } }
    }

    init(pid: Int32, cgroup: WorkerCgroup, control: Int32, route: ExitRoute) {
        self.pid = pid
        self.parkedAt = .now
        self.group = Mutex(cgroup)
        self.control = Mutex(control)
        self.route = route
    }

    /// Renames the helper's cgroup after the worker that takes it, so a worker's group is named the same however
    /// it started; keeps the name where the kernel cannot rename a cgroup (v2). Returns the group.
    func adopt(name: String) -> WorkerCgroup {
        group.withLock { group in
            if let renamed = try? group.renamed(to: name) { group = renamed }
            return group
        }
    }

    /// Whether the process has exited (then it is no use).
    var hasExited: Bool { route.exit != nil }

    /// Whether the helper has said it joined its cgroup and waits. Never blocks.
    var isParked: Bool {
        if parked.load(ordering: .acquiring) { return !hasExited }
        let said = control.withLock { fd -> Bool in
            guard fd >= 0 else { return false }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 0) == 1, poller.revents & Int16(POLLIN) != 0 else { return false }
            var byte: UInt8 = 0
            return recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == 1 && byte == UInt8(ascii: "R")
        }
        if said { parked.store(true, ordering: .releasing) }
        return said && !hasExited
    }

    /// Hands the helper its worker: `arguments` are the helper's options after `--park` (see `verge-sandbox-exec`),
    /// `descriptors` become the worker's fds 1, 2, 3, …; `onExit` gets the process's exit from now on. Throws when
    /// the helper is gone or the message cannot be sent; the caller then discards it.
    public func start(
        arguments: [String], descriptors: [Int32], onExit: @escaping @Sendable (ProcessExit) -> Void
    ) throws(VergeError) {
        var message: [UInt8] = []
        for argument in arguments {
            guard !argument.utf8.contains(0) else {
                throw VergeError(.internalError, "a sandbox argument contains a NUL byte")
            }
            message += Array(argument.utf8) + [0]
        }
        let rc = control.withLock { fd -> Int32 in
            guard fd >= 0 else { return -EBADF }
            let rc = message.withUnsafeBytes { bytes in
                descriptors.withUnsafeBufferPointer { fds in
                    verge_send_with_fds(fd, bytes.baseAddress, bytes.count, fds.baseAddress, fds.count)
                }
            }
            if rc == 0 {
                // Sent: the helper has what it needs; nothing more goes this way.
                close(fd)
                fd = -1
            }
            return rc
        }
        guard rc == 0 else {
            throw VergeError(
                .initFailed, "cannot hand the worker to its parked sandbox helper: \(String(cString: strerror(-rc)))")
        }
        if let exit = route.take(for: onExit) {
            throw VergeError(.initFailed, "the parked sandbox helper exited (\(exit)) before it got its worker")
        }
    }

    /// Lets the helper go without a worker: it sees its socket close and exits; whatever is in its cgroup is
    /// killed. The cgroup is removed once the process has been reaped (``removeWhenGone()``).
    func release() {
        control.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    /// Releases the helper, kills its cgroup and removes the cgroup: for a helper whose worker failed to start
    /// before the helper ran anything of it.
    public func discard() {
        release()
        cgroup.killAll()
        cgroup.remove()
    }

    /// Routes the exit to `handler` while no worker has the helper.
    func whileParked(_ handler: @escaping @Sendable (ProcessExit) -> Void) {
        route.route(to: handler)
    }
}
