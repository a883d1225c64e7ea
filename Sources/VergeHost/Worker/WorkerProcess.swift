import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import VergeCore
import VergeProtocol
import VergeSandbox
import VergeSupervisor
import VergeUsage

#if canImport(Glibc)
import Glibc
#endif

/// One worker: a process running one function version, connected to the host by a private socketpair at its fd 3,
/// its stdout and stderr captured as function logs. It serves one invocation at a time; the pool guarantees that
/// only the holder of its lease reads and writes frames.
final class WorkerProcess: Sendable {
    let id: Int
    let pid: Int32
    /// Spawn-to-ready time.
    let initDuration: Duration
    /// When the worker became ready: a call that started waiting before this waited for the cold start.
    let readyAt: ContinuousClock.Instant
    private let channel: WorkerChannel
    private let supervisor: Supervisor
    /// The worker's cgroup on a sandboxed host: every process it starts is in it.
    let cgroup: WorkerCgroup?
    /// CPU time one call may use.
    private let cpuLimit: Duration?
    /// Kills the worker when it sends a frame while no call holds it.
    private let idleGuard: IdleFrameGuard
    private let state = Mutex<MutableState>(MutableState())
    /// Set once the process has been reaped.
    let exit: OneShot<ProcessExit>

    private struct MutableState {
        /// The current or, between calls, the last invocation: its id tags the worker's log lines.
        var invocationID: String?
        var inCall = false
        var invocationCount = 0
        var deadline: DeadlineSweep.Token?
        var cpuCheck: DeadlineSweep.Token?
        var timedOut = false
        /// The limit that ended the current call, when the host ended it (CPU time).
        var limitHit: SandboxLimit?
        /// The cgroup's OOM-kill and process-limit counters when the host last looked: at the worker's start (a new
        /// cgroup counts from 0) and after every failed call. Reading them costs two file reads, so a call that ends
        /// well does not: a child process the OOM killer took during a call that still answered is counted against
        /// the worker's next failed call.
        var oomKillsSeen = 0
        var processLimitHitsSeen = 0
        /// CPU and memory counters when the call began (the memory peak reset on cgroup v1), for its usage record.
        var usageAtStart: WorkerCgroup.CallStart?
    }

    private init(
        id: Int, pid: Int32, initDuration: Duration, channel: WorkerChannel, supervisor: Supervisor,
        exit: OneShot<ProcessExit>, cgroup: WorkerCgroup?, cpuLimit: Duration?, idleGuard: IdleFrameGuard
    ) {
        self.idleGuard = idleGuard
        self.exit = exit
        self.cgroup = cgroup
        self.cpuLimit = cpuLimit
        self.id = id
        self.pid = pid
        self.initDuration = initDuration
        self.readyAt = .now
        self.channel = channel
        self.supervisor = supervisor
    }

    /// Starts a worker and waits for its `ready` frame. Throws `init_failed` with the function's own error when it
    /// reports one, when it exits or breaks the protocol first, or when it is not ready within `initTimeout`.
    /// `onExit` is called once the process has been reaped — also when launching fails after the spawn. With
    /// `parked` (see ``ParkedHelper``), the worker takes that helper instead of spawning one; if the helper cannot
    /// take it, the worker is spawned the ordinary way.
    static func launch(
        id: Int,
        name: String,
        plan: WorkerLaunchPlan,
        parked: ParkedHelper? = nil,
        initTimeout: Duration,
        supervisor: Supervisor,
        eventLoopGroup: any EventLoopGroup,
        logSink: @escaping @Sendable (_ worker: WorkerProcess?, _ stream: String, _ line: String) -> Void,
        onExit: @escaping @Sendable (ProcessExit) -> Void
    ) async throws(VergeError) -> WorkerProcess {
        let clock = ContinuousClock()
        let start = clock.now
        let socket = try Descriptors.socketPair()
        let stdout: (read: Int32, write: Int32)
        let stderr: (read: Int32, write: Int32)
        do {
            stdout = try Descriptors.pipe()
        } catch {
            Descriptors.close(socket.parent)
            Descriptors.close(socket.child)
            throw error
        }
        do {
            stderr = try Descriptors.pipe()
        } catch {
            for fd in [socket.parent, socket.child, stdout.read, stdout.write] { Descriptors.close(fd) }
            throw error
        }

        let exit = OneShot<ProcessExit>()
        let workerBox = Mutex<WorkerProcess?>(nil)
        let ourDescriptors = [socket.parent, socket.child, stdout.read, stdout.write, stderr.read, stderr.write]
        let onProcessExit: @Sendable (ProcessExit) -> Void = { status in
            exit.set(status)
            onExit(status)
        }
        func prepare(_ parked: ParkedHelper?, name: String) throws(VergeError) -> WorkerLaunchPlan.Prepared {
            do {
                return try plan.prepare(
                    workerName: name, channel: socket.child, stdout: stdout.write, stderr: stderr.write, parked: parked)
            } catch {
                for fd in ourDescriptors { Descriptors.close(fd) }
                throw error
            }
        }
        var started: (pid: Int32, prepared: WorkerLaunchPlan.Prepared)?
        if let parked {
            let candidate = try prepare(parked, name: name)
            do {
                // The helper gets the worker's descriptors as its fds 1, 2, 3, … (stdin stays /dev/null).
                let descriptors = candidate.spec.fileDescriptors.dropFirst().map { $0 ?? -1 }
                try parked.start(arguments: candidate.spec.arguments, descriptors: descriptors, onExit: onProcessExit)
                started = (parked.pid, candidate)
            } catch {
                // It died waiting, or cannot be reached: nothing of the worker ran there. The ordinary way.
                candidate.sandbox?.spawned()
                parked.discard()
            }
        }
        if started == nil {
            // After a parked helper that could not take the worker, a name of its own: that helper's group (already
            // named after the worker) may take a moment to go.
            let candidate = try prepare(nil, name: parked == nil ? name : name + "-again")
            do {
                started = (try await supervisor.spawn(candidate.spec, onExit: onProcessExit), candidate)
            } catch {
                for fd in ourDescriptors { Descriptors.close(fd) }
                candidate.sandbox?.spawned()
                candidate.cgroup?.remove()
                throw error
            }
        }
        guard let (pid, prepared) = started else { preconditionFailure("a worker was neither taken nor spawned") }
        prepared.sandbox?.spawned()
        let cgroup = prepared.cgroup
        // The child holds its own copies now; ours would keep the channel open after the worker dies.
        for fd in [socket.child, stdout.write, stderr.write] { Descriptors.close(fd) }

        let logBudget = LogBudget()
        let sink: @Sendable (String, String) -> Void = { stream, line in
            logSink(workerBox.withLock { $0 }, stream, line)
        }
        for (fd, stream) in [(stdout.read, "stdout"), (stderr.read, "stderr")] {
            do {
                // One bounded read per wake-up: when the budget pauses reading, at most a read's worth of lines
                // more (plus what the pipe holds) gets through before the worker's own writes block.
                _ = try await NIOPipeBootstrap(group: eventLoopGroup)
                    .channelOption(ChannelOptions.maxMessagesPerRead, value: 1)
                    .channelOption(
                        ChannelOptions.recvAllocator,
                        value: FixedSizeRecvByteBufferAllocator(capacity: LogLineDecoder.maxLineLength))
                    .takingOwnershipOfDescriptor(input: fd) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LogLineDecoder()))
                            try channel.pipeline.syncOperations.addHandler(
                                LogLineHandler(stream: stream, budget: logBudget, sink: sink))
                            return channel
                        }
                    }
            } catch {
                Descriptors.close(fd)
            }
        }

        let channel: WorkerChannel
        let idleGuard = IdleFrameGuard { killEverything(pid: pid, cgroup: cgroup, supervisor: supervisor) }
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup).withConnectedSocket(socket.parent) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(idleGuard)
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(WireFrameEncoder()))
                    return try WorkerChannel.attach(to: channel)
                }
            }
        } catch {
            Descriptors.close(socket.parent)
            killEverything(pid: pid, cgroup: cgroup, supervisor: supervisor)
            _ = await exit.wait()
            removeWhenEmpty(cgroup, supervisor: supervisor)
            throw VergeError(.initFailed, "cannot attach to the worker's channel", underlying: error)
        }

        let timedOut = Mutex(false)
        let initTimer = supervisor.startTimer(after: initTimeout) {
            timedOut.withLock { $0 = true }
            killEverything(pid: pid, cgroup: cgroup, supervisor: supervisor)
        }
        defer { initTimer.cancel() }

        func fail(_ message: String) async -> VergeError {
            killEverything(pid: pid, cgroup: cgroup, supervisor: supervisor)
            channel.close()
            let status = await exit.wait()
            removeWhenEmpty(cgroup, supervisor: supervisor)
            if cgroup.map({ $0.oomKills() > 0 }) == true {
                return VergeError(
                    .initFailed, "function ran out of memory while starting (limit \(plan.limits.memoryBytes >> 20) MiB)",
                    limit: SandboxLimit.memory.rawValue)
            }
            if timedOut.withLock({ $0 }) {
                return VergeError(.initFailed, "function did not become ready within \(initTimeout)")
            }
            return VergeError(.initFailed, "\(message) (worker \(status))")
        }

        let first: WireFrame?
        do {
            first = try await channel.next()
        } catch {
            throw await fail("worker broke the protocol before it was ready: \(error)")
        }
        guard let first else { throw await fail("worker exited before it was ready") }
        switch first.kind {
        case .ready:
            let ready: Ready
            do { ready = try first.decode(Ready.self) } catch { throw await fail("malformed ready frame: \(error)") }
            guard ready.protocol == WorkerProtocol.version else {
                throw await fail("worker speaks protocol \(ready.protocol), the host speaks \(WorkerProtocol.version)")
            }
        case .initError:
            let report = first.failureReport
            throw await fail("function failed to initialize: \(report.type): \(report.message)")
        default:
            throw await fail("worker sent \(first.kind) before ready")
        }
        let worker = WorkerProcess(
            id: id, pid: pid, initDuration: clock.now - start, channel: channel,
            supervisor: supervisor, exit: exit, cgroup: cgroup, cpuLimit: plan.cpuLimit, idleGuard: idleGuard
        )
        // Ready: from now on the worker speaks only while a call holds it.
        idleGuard.expectFrames(false)
        workerBox.withLock { $0 = worker }
        return worker
    }

    /// The invocation in progress, or the last one between calls: it tags the worker's log lines.
    var currentInvocationID: String? { state.withLock { $0.invocationID } }

    var invocationCount: Int { state.withLock { $0.invocationCount } }

    /// Marks the start of an invocation and arms its deadline (when it passes, everything of the worker is killed)
    /// and, with a CPU limit, a check of the CPU time the call has used.
    func begin(invocationID: String, deadline: Duration) {
        idleGuard.expectFrames(true)
        let usage = cgroup?.beginCall()
        let (invocation, unmeasured) = state.withLock { state -> (Int, WorkerCgroup.CallStart?) in
            let unmeasured = state.usageAtStart
            state.usageAtStart = usage
            state.invocationID = invocationID
            state.inCall = true
            state.invocationCount += 1
            state.timedOut = false
            state.limitHit = nil
            return (state.invocationCount, unmeasured)
        }
        // A call whose usage was never read (it cannot happen today; every path reads it) releases what it held.
        if let unmeasured { cgroup?.discard(unmeasured) }
        let token = supervisor.deadlines.arm(after: deadline) { [weak self] in
            guard let self else { return }
            // A deadline already firing when its call ended must not touch the next call: check under the lock.
            self.state.withLock { state in
                guard state.invocationCount == invocation, state.inCall else { return }
                state.timedOut = true
            }
            self.killIfStill(invocation)
        }
        state.withLock { $0.deadline = token }
        if let cpuLimit, let used = usage?.cpu {
            armCPUCheck(invocation: invocation, budget: cpuLimit, startedAt: used, after: cpuLimit)
        }
    }

    /// CPU time cannot run faster than wall time per core, so the check first comes when the whole budget could
    /// have been used, then again when what is left could have been.
    private func armCPUCheck(invocation: Int, budget: Duration, startedAt: Duration, after delay: Duration) {
        let check = supervisor.deadlines.arm(after: max(delay, .milliseconds(2))) { [weak self] in
            guard let self, let cgroup = self.cgroup, let now = cgroup.cpuUsage() else { return }
            let used = now - startedAt
            let over = self.state.withLock { state -> Bool? in
                guard state.invocationCount == invocation, state.inCall else { return nil }
                if used >= budget { state.limitHit = .cpu }
                return used >= budget
            }
            switch over {
            case true?: self.killIfStill(invocation)
            case false?: self.armCPUCheck(invocation: invocation, budget: budget, startedAt: startedAt, after: budget - used)
            case nil: return
            }
        }
        state.withLock { state in
            if state.invocationCount == invocation, state.inCall {
                state.cpuCheck = check
            } else {
                supervisor.deadlines.disarm(check)
            }
        }
    }

    private func killIfStill(_ invocation: Int) {
        let still = state.withLock { $0.invocationCount == invocation && $0.inCall }
        if still { killEverything(pid: pid, cgroup: cgroup, supervisor: supervisor) }
    }

    /// Ends the invocation: disarms the deadline. Returns whether the deadline had passed.
    @discardableResult
    func end() -> Bool {
        idleGuard.expectFrames(false)
        return state.withLock {
            if let deadline = $0.deadline { supervisor.deadlines.disarm(deadline) }
            $0.deadline = nil
            if let check = $0.cpuCheck { supervisor.deadlines.disarm(check) }
            $0.cpuCheck = nil
            $0.inCall = false
            // The invocation id stays until the next call: the worker flushed its output before answering, but
            // the host may read those lines from the pipes after the answer, and they still belong to this call.
            return $0.timedOut
        }
    }

    var deadlinePassed: Bool { state.withLock { $0.timedOut } }

    /// What the last call used: CPU time of the worker's cgroup since ``begin(invocationID:deadline:)`` and the
    /// cgroup's memory peak (see ``WorkerCgroup/beginCall()``). Nil without a cgroup. Call once, after the call.
    func callUsage() -> (cpu: Duration, memoryPeak: Int64)? {
        let start = state.withLock { state in
            defer { state.usageAtStart = nil }
            return state.usageAtStart
        }
        guard let cgroup, let start else { return nil }
        return cgroup.endCall(start)
    }

    /// The sandbox limit that ended the last call, if one did: CPU time when the host stopped it, memory when the
    /// kernel's OOM killer struck during it, processes when it failed while at its process limit, file size when
    /// the worker was killed by SIGXFSZ. Call after the call failed.
    func limitThatEndedTheCall() async -> SandboxLimit? {
        let oomKills = cgroup?.oomKills() ?? 0
        let processLimitHits = cgroup?.processLimitHits() ?? 0
        let (hit, oomBefore, pidsBefore) = state.withLock { state in
            defer {
                state.oomKillsSeen = oomKills
                state.processLimitHitsSeen = processLimitHits
            }
            return (state.limitHit, state.oomKillsSeen, state.processLimitHitsSeen)
        }
        if let hit { return hit }
        guard cgroup != nil else { return nil }
        if oomKills > oomBefore { return .memory }
        if let status = exit.value, status == .exited(128 + SIGXFSZ) || status == .signaled(SIGXFSZ) {
            return .fileSize
        }
        if processLimitHits > pidsBefore { return .processes }
        return nil
    }

    func send(_ frame: WireFrame) async throws {
        try await channel.write(frame)
    }

    /// Sends `frames` in one write.
    func send(contentsOf frames: [WireFrame]) async throws {
        try await channel.write(contentsOf: frames)
    }

    /// Whether the worker's socket is open. One the worker closed, or that the host closed when the worker spoke out
    /// of turn (a frame right behind the one that ended its call), means the worker is not lent again.
    var isConnected: Bool { channel.isOpen }

    /// The next frame from the worker; `nil` when its channel closed (it exited or was killed).
    func receive() async throws -> WireFrame? {
        try await channel.next()
    }

    /// Stops the worker: closes its channel (an idle worker sees EOF and exits), sends SIGTERM to its processes
    /// and, after `grace`, kills everything it left.
    func stop(grace: Duration) {
        channel.close()
        guard exit.value == nil else { return }
        if let cgroup {
            // Not to the outer bubblewrap (it would take the sandbox down at once): to what runs inside it.
            for process in cgroup.processes() where process != pid { Glibc.kill(process, SIGTERM) }
        } else {
            supervisor.signal(pid: pid, SIGTERM, group: true)
        }
        _ = supervisor.startTimer(after: grace) { [supervisor, pid, exit, cgroup] in
            if exit.value == nil { killEverything(pid: pid, cgroup: cgroup, supervisor: supervisor) }
        }
    }

    /// Kills every process of the worker: its socket closes now, the processes die on ``killer`` — on cgroup v1,
    /// killing a group freezes it first and waits until it is frozen (up to ~100 ms), which must not hold up the
    /// event loop that carries other calls. The pool learns of the exit as usual, when the process is reaped.
    func kill() {
        channel.close()
        Self.killer.async { [pid, cgroup, supervisor] in
            killEverything(pid: pid, cgroup: cgroup, supervisor: supervisor)
        }
    }

    /// Where workers are killed: a serial queue of its own, off the event loops and the concurrency pool.
    private static let killer = DispatchQueue(label: "verge.worker-kill")

    /// Called once the process is reaped: closes the channel, kills any process the worker left behind and
    /// removes its cgroup.
    func reaped() {
        channel.close()
        killEverything(pid: pid, cgroup: cgroup, supervisor: supervisor)
        removeWhenEmpty(cgroup, supervisor: supervisor)
    }
}

/// A worker speaks only while a call holds it (and before it is ready): a frame at any other time — a response
/// written ahead for the next caller, say — is a protocol violation, and the worker is killed before any call can
/// read it.
final class IdleFrameGuard: ChannelInboundHandler, Sendable {
    typealias InboundIn = WireFrame
    typealias InboundOut = WireFrame
    private let expecting = Atomic<Bool>(true)
    private let violation: @Sendable () -> Void

    init(onViolation: @escaping @Sendable () -> Void) {
        self.violation = onViolation
    }

    func expectFrames(_ expected: Bool) {
        expecting.store(expected, ordering: .sequentiallyConsistent)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard expecting.load(ordering: .sequentiallyConsistent) else {
            violation()
            context.close(promise: nil)
            return
        }
        // The frame that ends a call (or the start) closes the gate at once, on the event loop: frames written
        // right behind it, in the same read, are already a violation.
        switch unwrapInboundIn(data).kind {
        case .ready, .initError, .responseEnd, .invocationError: expectFrames(false)
        default: break
        }
        context.fireChannelRead(data)
    }
}

/// Kills the worker's whole cgroup (every process it started, however it detached) and its process group.
private func killEverything(pid: Int32, cgroup: WorkerCgroup?, supervisor: Supervisor) {
    cgroup?.killAll()
    supervisor.signal(pid: pid, SIGKILL, group: true)
}

/// Removes a dead worker's cgroup; processes still being torn down keep it busy for a moment, so it retries.
private func removeWhenEmpty(_ cgroup: WorkerCgroup?, supervisor: Supervisor, attempts: Int = 100) {
    guard let cgroup, !cgroup.remove(), attempts > 1 else { return }
    _ = supervisor.startTimer(after: .milliseconds(20)) {
        removeWhenEmpty(cgroup, supervisor: supervisor, attempts: attempts - 1)
    }
}
