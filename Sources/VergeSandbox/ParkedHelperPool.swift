import CVergeSeccomp
import Foundation
import Logging
import Synchronization
import VergeCore
import VergeSupervisor

#if canImport(Glibc)
import Glibc
#endif

/// A few ``ParkedHelper``s kept ready per host, so a cold start takes one instead of making a cgroup, starting the
/// helper and waiting for it to join the cgroup. Each helper has a cgroup of its own (`parked-N` under the host's
/// directory), is handed to exactly one worker and leaves the pool when it is (a worker never shares one); the
/// pool refills in the background. ``shutdown()`` lets every waiting helper go and removes its cgroup.
public final class ParkedHelperPool: Sendable {
    public let capacity: Int
    private let sandbox: Sandbox
    private let supervisor: Supervisor
    private let logger: Logger
    private let state = Mutex<State>(State())
    /// Names the cgroups: unique among this host's groups (workers use their function's name and a number).
    private static let names = Atomic<Int>(0)

    private struct State {
        var waiting: [ParkedHelper] = []
        /// Helpers being started (spawned, not yet in `waiting`).
        var starting = 0
        var closed = false
    }

    public init(sandbox: Sandbox, supervisor: Supervisor, capacity: Int, logger: Logger) {
        self.sandbox = sandbox
        self.supervisor = supervisor
        self.capacity = capacity
        self.logger = logger
    }

    /// Helpers waiting in the pool (parked or still starting).
    public var count: Int { state.withLock { $0.waiting.count } }

    /// The pids of the helpers waiting in the pool.
    public var pids: [Int32] { state.withLock { $0.waiting.map(\.pid) } }

    /// A parked helper, out of the pool for good, or `nil` when none is parked yet (the caller starts its worker the
    /// ordinary way). Never blocks.
    public func take() -> ParkedHelper? {
        state.withLock { state -> ParkedHelper? in
            guard !state.closed else { return nil }
            // A helper that exited leaves the pool from its exit handler, once its cgroup is removed.
            guard let index = state.waiting.firstIndex(where: { $0.isParked }) else { return nil }
            return state.waiting.remove(at: index)
        }
    }

    /// Lets go of the waiting helpers parked for `age` or longer (they exit; their cgroups are removed) and returns
    /// how many; ``refill()`` replaces them. A parked helper made its worker's mount namespace when it parked, so it
    /// sees the host's mounts as they were then; the host calls this periodically so that view is never older than
    /// ``SandboxConfiguration/parkedHelperMaxAge``.
    @discardableResult
    public func recycle(olderThan age: Duration, now: ContinuousClock.Instant = .now) -> Int {
        let old = state.withLock { state -> [ParkedHelper] in
            guard !state.closed else { return [] }
            let old = state.waiting.filter { now - $0.parkedAt >= age }
            state.waiting.removeAll { now - $0.parkedAt >= age }
            return old
        }
        for helper in old { helper.discard() }
        return old.count
    }

    /// Starts helpers until the pool holds ``capacity`` of them. A helper that cannot be started is logged and
    /// left out: workers then start the ordinary way, which reports the cause to the call.
    public func refill() async {
        while true {
            let more = state.withLock { state -> Bool in
                guard !state.closed, state.waiting.count + state.starting < capacity else { return false }
                state.starting += 1
                return true
            }
            guard more else { return }
            let helper: ParkedHelper?
            do {
                helper = try await start()
            } catch {
                logger.info("cannot park a sandbox helper", metadata: ["error": "\(error)"])
                helper = nil
            }
            let keep = state.withLock { state -> Bool in
                state.starting -= 1
                guard let helper, !state.closed else { return false }
                state.waiting.append(helper)
                return true
            }
            guard keep else {
                helper?.discard()
                return
            }
        }
    }

    /// Lets every waiting helper go and removes its cgroup, waiting (up to `timeout`) for the helpers to exit.
    /// Helpers already handed to workers are theirs.
    public func shutdown(timeout: Duration = .seconds(5)) async {
        let helpers = state.withLock { state in
            state.closed = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for helper in helpers { helper.release() }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while helpers.contains(where: { !$0.hasExited }) && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        for helper in helpers { helper.discard() }
        // Helpers still being started see `closed` and are discarded when their start returns.
        while state.withLock({ $0.starting > 0 }) && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Makes a cgroup (no limits yet: they are the function's, applied when a worker takes it) and starts a helper
    /// parked in it.
    private func start() async throws(VergeError) -> ParkedHelper {
        let name = "parked-\(Self.names.wrappingAdd(1, ordering: .relaxed).newValue)"
        let cgroup = try sandbox.cgroups.makeGroup(name: name, limits: nil)
        var fds: [Int32] = [-1, -1]
        guard verge_seqpacket_pair(&fds) == 0 else {
            cgroup.remove()
            throw VergeError(.internalError, "cannot create a socket pair: \(String(cString: strerror(errno)))")
        }
        let (ours, theirs) = (fds[0], fds[1])
        var arguments = ["--keep-fds", "4"]
        for file in cgroup.joinFiles { arguments += ["--join", file] }
        // The staging mount namespace is prepared while parked (see `verge-sandbox-exec`).
        arguments += ["--stage-root", sandbox.configuration.stageRoot, "--park", "3", "--parent", "\(getpid())"]
        let route = ParkedHelper.ExitRoute()
        let pid: Int32
        do {
            pid = try await supervisor.spawn(
                ProcessSpec(
                    executable: sandbox.configuration.helper, arguments: arguments, environment: [:],
                    workingDirectory: "/", fileDescriptors: [nil, nil, nil, theirs], newProcessGroup: true)
            ) { status in route.exited(status) }
        } catch {
            close(ours)
            close(theirs)
            cgroup.remove()
            throw error
        }
        close(theirs)
        let helper = ParkedHelper(pid: pid, cgroup: cgroup, control: ours, route: route)
        // Until a worker takes it, its exit (it failed to park, or was killed) takes it out of the pool.
        helper.whileParked { [weak self] status in
            helper.discard()
            self?.state.withLock { state in state.waiting.removeAll { $0 === helper } }
            self?.logger.debug(
                "a parked sandbox helper exited", metadata: ["worker.pid": "\(helper.pid)", "status": "\(status)"])
        }
        return helper
    }
}
