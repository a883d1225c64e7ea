import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import VergeCore
import VergeProtocol
import VergeSupervisor
import VergeUsage

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
    private let channel: NIOAsyncChannel<WireFrame, WireFrame>
    private let reader: FrameReader
    private let supervisor: Supervisor
    private let state = Mutex<MutableState>(MutableState())
    /// Set once the process has been reaped.
    let exit: OneShot<ProcessExit>

    private struct MutableState {
        /// The current or, between calls, the last invocation: its id tags the worker's log lines.
        var invocationID: String?
        var inCall = false
        var invocationCount = 0
        var deadlineTimer: SupervisorTimer?
        var timedOut = false
    }

    private init(
        id: Int, pid: Int32, initDuration: Duration, channel: NIOAsyncChannel<WireFrame, WireFrame>,
        reader: FrameReader, supervisor: Supervisor, exit: OneShot<ProcessExit>
    ) {
        self.exit = exit
        self.id = id
        self.pid = pid
        self.initDuration = initDuration
        self.readyAt = .now
        self.channel = channel
        self.reader = reader
        self.supervisor = supervisor
    }

    /// Starts a worker and waits for its `ready` frame. Throws `init_failed` with the function's own error when it
    /// reports one, when it exits or breaks the protocol first, or when it is not ready within `initTimeout`.
    /// `onExit` is called once the process has been reaped — also when launching fails after the spawn.
    static func launch(
        id: Int,
        plan: WorkerLaunchPlan,
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
        let pid: Int32
        do {
            pid = try await supervisor.spawn(
                plan.processSpec(channel: socket.child, stdout: stdout.write, stderr: stderr.write)
            ) { status in
                exit.set(status)
                onExit(status)
            }
        } catch {
            for fd in [socket.parent, socket.child, stdout.read, stdout.write, stderr.read, stderr.write] {
                Descriptors.close(fd)
            }
            throw error
        }
        // The child holds its own copies now; ours would keep the channel open after the worker dies.
        for fd in [socket.child, stdout.write, stderr.write] { Descriptors.close(fd) }

        let sink: @Sendable (String, String) -> Void = { stream, line in
            logSink(workerBox.withLock { $0 }, stream, line)
        }
        for (fd, stream) in [(stdout.read, "stdout"), (stderr.read, "stderr")] {
            do {
                _ = try await NIOPipeBootstrap(group: eventLoopGroup)
                    .takingOwnershipOfDescriptor(input: fd) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LogLineDecoder()))
                            try channel.pipeline.syncOperations.addHandler(LogLineHandler(stream: stream, sink: sink))
                            return channel
                        }
                    }
            } catch {
                Descriptors.close(fd)
            }
        }

        let channel: NIOAsyncChannel<WireFrame, WireFrame>
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup).withConnectedSocket(socket.parent) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(WireFrameEncoder()))
                    return try NIOAsyncChannel<WireFrame, WireFrame>(wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            Descriptors.close(socket.parent)
            supervisor.signal(pid: pid, SIGKILL, group: true)
            throw VergeError(.initFailed, "cannot attach to the worker's channel", underlying: error)
        }

        let reader = FrameReader(channel.inbound)
        let timedOut = Mutex(false)
        let initTimer = supervisor.startTimer(after: initTimeout) {
            timedOut.withLock { $0 = true }
            supervisor.signal(pid: pid, SIGKILL, group: true)
        }
        defer { initTimer.cancel() }

        func fail(_ message: String) async -> VergeError {
            supervisor.signal(pid: pid, SIGKILL, group: true)
            // The writer must be finished before the channel is dropped (NIO traps otherwise).
            channel.outbound.finish()
            channel.channel.close(promise: nil)
            let status = await exit.wait()
            if timedOut.withLock({ $0 }) {
                return VergeError(.initFailed, "function did not become ready within \(initTimeout)")
            }
            return VergeError(.initFailed, "\(message) (worker \(status))")
        }

        let first: WireFrame?
        do {
            first = try await reader.next()
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
            let report = (try? first.decode(FailureReport.self)) ?? FailureReport(type: "Error", message: "unknown")
            throw await fail("function failed to initialize: \(report.type): \(report.message)")
        default:
            throw await fail("worker sent \(first.kind) before ready")
        }
        let worker = WorkerProcess(
            id: id, pid: pid, initDuration: clock.now - start, channel: channel, reader: reader,
            supervisor: supervisor, exit: exit
        )
        workerBox.withLock { $0 = worker }
        return worker
    }

    deinit {
        // Dropping an unfinished NIO writer traps; the worker is gone, so nothing more will be written.
        channel.outbound.finish()
    }

    /// The invocation in progress, or the last one between calls: it tags the worker's log lines.
    var currentInvocationID: String? { state.withLock { $0.invocationID } }

    var invocationCount: Int { state.withLock { $0.invocationCount } }

    /// Marks the start of an invocation and arms its deadline: when it passes, the worker's process group is killed.
    func begin(invocationID: String, deadline: Duration) {
        let invocation = state.withLock {
            $0.invocationID = invocationID
            $0.inCall = true
            $0.invocationCount += 1
            $0.timedOut = false
            return $0.invocationCount
        }
        let timer = supervisor.startTimer(after: deadline) { [weak self] in
            guard let self else { return }
            // A timer already firing when its call ended must not touch the next call: check under the lock.
            self.state.withLock { state in
                guard state.invocationCount == invocation, state.inCall else { return }
                state.timedOut = true
                self.supervisor.signal(pid: self.pid, SIGKILL, group: true)
            }
        }
        state.withLock { $0.deadlineTimer = timer }
    }

    /// Ends the invocation: disarms the deadline. Returns whether the deadline had passed.
    @discardableResult
    func end() -> Bool {
        state.withLock {
            $0.deadlineTimer?.cancel()
            $0.deadlineTimer = nil
            $0.inCall = false
            // The invocation id stays until the next call: the worker flushed its output before answering, but
            // the host may read those lines from the pipes after the answer, and they still belong to this call.
            return $0.timedOut
        }
    }

    var deadlinePassed: Bool { state.withLock { $0.timedOut } }

    func send(_ frame: WireFrame) async throws {
        try await channel.outbound.write(frame)
    }

    /// The next frame from the worker; `nil` when its channel closed (it exited or was killed).
    func receive() async throws -> WireFrame? {
        try await reader.next()
    }

    /// Stops the worker: closes its channel (an idle worker sees EOF and exits), sends SIGTERM to its group and,
    /// after `grace`, SIGKILL.
    func stop(grace: Duration) {
        channel.channel.close(promise: nil)
        guard exit.value == nil else { return }
        supervisor.signal(pid: pid, SIGTERM, group: true)
        _ = supervisor.startTimer(after: grace) { [supervisor, pid, exit] in
            if exit.value == nil { supervisor.signal(pid: pid, SIGKILL, group: true) }
        }
    }

    /// Kills the worker's whole process group at once.
    func kill() {
        supervisor.signal(pid: pid, SIGKILL, group: true)
        channel.channel.close(promise: nil)
    }

    /// Called once the process is reaped: closes the channel and kills any process the worker left in its group.
    func reaped() {
        channel.channel.close(promise: nil)
        supervisor.signal(pid: pid, SIGKILL, group: true)
    }
}

/// The inbound frame iterator. Only the current lease holder calls `next()`: the pool hands a worker to one
/// invocation at a time, which is what makes the unchecked `Sendable` sound.
final class FrameReader: @unchecked Sendable {
    private var iterator: NIOAsyncChannelInboundStream<WireFrame>.AsyncIterator

    init(_ stream: NIOAsyncChannelInboundStream<WireFrame>) {
        self.iterator = stream.makeAsyncIterator()
    }

    func next() async throws -> WireFrame? {
        try await iterator.next()
    }
}
