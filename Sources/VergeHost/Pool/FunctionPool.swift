import Logging
import NIOCore
import Synchronization
import VergeBundle
import VergeCore
import VergeSandbox
import VergeSupervisor
import VergeUsage

/// A worker handed to one invocation.
struct Lease: Sendable {
    let worker: WorkerProcess
    /// This is the worker's first invocation and the call waited for it to start.
    let coldStart: Bool
    /// Time from asking for a worker to getting one (includes the cold start when `coldStart`).
    let waited: Duration
}

/// What a pool needs from its host.
struct PoolEnvironment: Sendable {
    let configuration: HostConfiguration
    let supervisor: Supervisor
    let eventLoopGroup: any EventLoopGroup
    let launcher: WorkerLauncher
    /// The host's capacity, shared by every pool.
    let admission: HostAdmission
    let logSink: FunctionLogSink
    let logger: Logger
    /// The host's sandbox; `nil` only when the operator chose `--isolation none`.
    let sandbox: Sandbox?
    /// Sandbox helpers started ahead of their workers (with ``sandbox``).
    var parkedHelpers: ParkedHelperPool? = nil
}

/// The process pool of one function version: it grows on demand up to the manifest's `max_workers` — each new
/// worker needs a slot of host capacity from `HostAdmission` first — reaps workers idle for longer than the idle
/// timeout down to `min_instances` and, at zero, cold-starts the next call's worker. Rules live in
/// `PoolStateMachine` and `AdmissionStateMachine`; this type carries their actions out.
final class FunctionPool: AdmissionClient {
    let deployment: Deployment
    let idleTimeout: Duration
    /// The calls' metrics, made once.
    let metrics: FunctionMetrics
    private let environment: PoolEnvironment
    private let plan: WorkerLaunchPlan
    /// The loops of the host's group, by affinity: a worker started for a call lives on the call's loop.
    private let eventLoops: [PoolStateMachine.Affinity: any EventLoop]
    private let state: Mutex<State>

    private struct State {
        var machine: PoolStateMachine
        var workers: [Int: WorkerProcess] = [:]
        var waiters: [Int: Waiter] = [:]
        var nextWaiterID = 1
        /// The armed idle timer of each idle worker, cancelled when the worker is used or stops, so a busy host does
        /// not accumulate a timer per call.
        var idleTimers: [Int: DeadlineSweep.Token] = [:]
        /// Each worker's slot of host capacity, from the request until the process has exited.
        var slots: [Int: Int] = [:]
    }

    private struct Waiter {
        var continuation: CheckedContinuation<WorkerProcess, any Error>
        var timer: DeadlineSweep.Token?
    }

    /// Side effects decided under the lock, carried out after it is released.
    private enum Effect {
        case resume(CheckedContinuation<WorkerProcess, any Error>, DeadlineSweep.Token?, WorkerProcess)
        case fail(CheckedContinuation<WorkerProcess, any Error>, DeadlineSweep.Token?, VergeError)
        case idleTimer(worker: Int, generation: Int)
        case stop(WorkerProcess)
        case launch(Int)
        case admission(HostAdmission.Effects)
    }

    init(deployment: Deployment, environment: PoolEnvironment) {
        self.deployment = deployment
        self.environment = environment
        self.metrics = FunctionMetrics(
            host: environment.configuration.name, tenant: deployment.tenant, function: deployment.name)
        self.idleTimeout =
            deployment.manifest.idleTimeoutSeconds.map { .seconds($0) } ?? environment.configuration.idleTimeout
        self.eventLoops = Dictionary(
            environment.eventLoopGroup.makeIterator().map { (Self.affinity(of: $0), $0) },
            uniquingKeysWith: { first, _ in first })
        self.plan = WorkerLaunchPlan(
            deployment: deployment, configuration: environment.configuration, sandbox: environment.sandbox)
        self.state = Mutex(
            State(
                machine: PoolStateMachine(
                    maxWorkers: deployment.manifest.maxWorkers, minInstances: deployment.manifest.minInstances,
                    maxQueued: environment.configuration.maxQueuedCalls
                )))
    }

    /// Counts of worker processes by state, and of calls waiting for one.
    struct Stats: Sendable, Equatable, Codable {
        var live: Int
        var idle: Int
        var busy: Int
        var starting: Int
        var queued: Int
    }

    var stats: Stats {
        state.withLock {
            // Workers still waiting for room in the host have no process yet.
            Stats(
                live: $0.machine.liveCount - $0.machine.awaitingRoom.count, idle: $0.machine.idleCount,
                busy: $0.machine.busyCount, starting: $0.machine.spawningCount, queued: $0.machine.waiters.count
            )
        }
    }

    /// Pids of the live workers (for diagnostics and tests).
    var workerPIDs: [Int32] { state.withLock { $0.workers.values.map(\.pid).sorted() } }

    // MARK: Acquire and release

    /// A worker for one invocation: an idle one at once, otherwise after one starts or frees up. Fails with
    /// `overloaded` when none is free within `queueTimeout` or the host's queue for this function is full (a call
    /// for which a worker starts at once waits for that start instead: the host's `initTimeout` bounds it, so a
    /// slow cold start is not reported as a full host), with
    /// `too_many_requests` when the function is at its `max_workers` and its queue is full, with `init_failed`
    /// when the worker started for this call cannot start, and with `shutting_down` once the pool stops.
    ///
    /// `eventLoop` is the loop the call's connection lives on: an idle worker on that loop is preferred, and a
    /// worker started for the call lives there (see `PoolStateMachine`'s affinity), so the call needs no thread
    /// hand-off to reach its worker.
    func acquire(queueTimeout: Duration, eventLoop: (any EventLoop)? = nil) async throws -> Lease {
        let clock = ContinuousClock()
        let start = clock.now
        let affinity = eventLoop.map(Self.affinity(of:)) ?? PoolStateMachine.anyAffinity
        let waiterID = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        let worker = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<WorkerProcess, any Error>) in
                let (effects, patience) = state.withLock { state -> ([Effect], Duration?) in
                    var stopped: [Effect] = []
                    while true {
                        switch state.machine.acquire(waiterID, affinity: affinity) {
                        case .use(let id):
                            // A worker whose socket is closed is dead but maybe not reaped yet (it exited, or the
                            // host stopped it for speaking out of turn); host admission may have reclaimed an idle
                            // one a moment ago. Either way it stops and the call looks again.
                            if state.workers[id]?.isConnected == false
                                || state.slots[id].map({ !environment.admission.use($0) }) == true
                            {
                                state.machine.retire(id)
                                if let worker = state.workers[id] { stopped.append(.stop(worker)) }
                                continue
                            }
                            return (stopped + [.resume(continuation, nil, state.workers[id]!)], nil)
                        case .reject(let reason):
                            return (stopped + [.fail(continuation, nil, rejection(reason, in: state))], nil)
                        case .wait:
                            state.waiters[waiterID] = Waiter(continuation: continuation, timer: nil)
                            return (stopped, queueTimeout)
                        case .startWorker(let id):
                            state.waiters[waiterID] = Waiter(continuation: continuation, timer: nil)
                            let admitted = admit(id, background: false, in: &state)
                            let launched = admitted.contains { if case .launch = $0 { true } else { false } }
                            // A worker starts for this call now: it waits for that start (a start that fails or
                            // passes the init timeout fails the call with `init_failed`); the bound here only
                            // keeps anything from waiting forever.
                            let initTimeout = environment.configuration.initTimeout
                            return (stopped + admitted, launched ? queueTimeout + initTimeout : queueTimeout)
                        }
                    }
                }
                if let patience {
                    let timer = deadlines.arm(after: patience) { [weak self] in
                        self?.abandon(
                            waiterID,
                            VergeError(
                                .overloaded,
                                "no worker of '\(self?.deployment.name ?? "")' was free within \(patience)")
                        )
                    }
                    let stillWaiting = state.withLock { state -> Bool in
                        guard state.waiters[waiterID] != nil else { return false }
                        state.waiters[waiterID]!.timer = timer
                        return true
                    }
                    if !stillWaiting { deadlines.disarm(timer) }
                }
                run(effects)
            }
        } onCancel: {
            abandon(waiterID, VergeError(.shuttingDown, "the call was cancelled while waiting for a worker"))
        }
        // Cold: the worker's first call, and this call was already waiting when the worker became ready.
        let cold = worker.invocationCount == 0 && start < worker.readyAt
        return Lease(worker: worker, coldStart: cold, waited: clock.now - start)
    }

    /// Returns the worker after an invocation. A worker that cannot continue (it crashed, timed out or broke the
    /// protocol) is killed instead and replaced on demand. When calls wait here while another function waits for
    /// host capacity and holds fewer workers, the worker stops instead so its slot goes to the other function.
    func release(_ lease: Lease, reusable: Bool) {
        let worker = lease.worker
        // Reaping is asynchronous: a worker may have closed its socket (or broken the protocol right behind its
        // last frame) and not be reaped yet.
        if reusable, worker.exit.value == nil, worker.isConnected {
            let effects = state.withLock { state -> [Effect] in
                let yield =
                    !state.machine.waiters.isEmpty
                    && state.slots[worker.id].map { environment.admission.yieldForOthers($0) } == true
                return resolve(state.machine.release(worker.id, yield: yield), in: &state)
            }
            run(effects)
        } else {
            state.withLock { $0.machine.retire(worker.id) }
            worker.kill()
        }
    }

    private func abandon(_ waiterID: Int, _ error: VergeError) {
        let (waiter, effects) = state.withLock { state -> (Waiter?, [Effect]) in
            guard state.machine.cancel(waiterID) else { return (nil, []) }
            return (state.waiters.removeValue(forKey: waiterID), withdrawUnneededRequests(in: &state))
        }
        run(effects)
        guard let waiter else { return }
        if let timer = waiter.timer { deadlines.disarm(timer) }
        waiter.continuation.resume(throwing: error)
    }

    private func rejection(_ reason: PoolStateMachine.Rejection, in state: State) -> VergeError {
        let name = deployment.name
        let queued = state.machine.waiters.count
        switch reason {
        case .shuttingDown:
            return VergeError(.shuttingDown, "the host is shutting down")
        case .functionAtCapacity:
            return VergeError(
                .tooManyRequests,
                "'\(name)' runs its max_workers (\(deployment.manifest.maxWorkers)) and \(queued) calls already wait")
        case .hostAtCapacity:
            return VergeError(
                .overloaded, "the host is at capacity and \(queued) calls of '\(name)' already wait for a worker")
        }
    }

    // MARK: Host admission

    /// Asks host admission for a slot for worker `id`: it launches once granted. A refused start counts as a
    /// failed one: the call it was for fails with `overloaded`.
    private func admit(_ id: Int, background: Bool, in state: inout State) -> [Effect] {
        let memoryMB = deployment.manifest.memoryMB
        let (slot, decision, admissionEffects) = environment.admission.request(
            for: self, worker: id, function: deployment.key, memoryMB: memoryMB, background: background)
        var effects: [Effect] = admissionEffects.isEmpty ? [] : [.admission(admissionEffects)]
        switch decision {
        case .granted:
            state.slots[id] = slot
            effects.append(.launch(id))
        case .queued:
            state.slots[id] = slot
            state.machine.waitingForRoom(id)
        case .refused(let refusal):
            let capacity = environment.admission.capacity.memoryMB
            let error =
                refusal == .exceedsCapacity
                ? VergeError(
                    .overloaded,
                    "'\(deployment.name)' needs \(memoryMB) MB per worker, more than the host's whole capacity of "
                        + "\(capacity) MB (max_memory_mb)")
                : VergeError(.overloaded, "the host has no room for another worker of '\(deployment.name)'")
            effects += resolve(state.machine.workerExited(id), in: &state, error: error)
        }
        return effects
    }

    /// Withdraws queued slot requests no waiting call needs any more (the calls gave up), newest first.
    private func withdrawUnneededRequests(in state: inout State) -> [Effect] {
        var effects: [Effect] = []
        for id in state.machine.awaitingRoom.sorted(by: >)
        where state.machine.startingCount > state.machine.waiters.count {
            guard let slot = state.slots[id], let withdrawn = environment.admission.cancel(slot) else { continue }
            _ = state.machine.abandonStart(id)
            state.slots[id] = nil
            if !withdrawn.isEmpty { effects.append(.admission(withdrawn)) }
        }
        return effects
    }

    func admissionGranted(worker id: Int) {
        let effects = state.withLock { state -> [Effect] in
            guard state.machine.roomGranted(id) else { return [] }
            if state.machine.isShuttingDown {
                var effects = resolve(state.machine.workerExited(id), in: &state)
                if let slot = state.slots.removeValue(forKey: id) {
                    effects.append(.admission(environment.admission.release(slot)))
                }
                return effects
            }
            return [.launch(id)]
        }
        run(effects)
    }

    func admissionReclaims(worker id: Int) {
        let effects = state.withLock { state in resolve(state.machine.reclaim(id), in: &state) }
        run(effects)
    }

    /// Starts the workers this version should have before any call: `min_instances`, or one with `prewarm`. They
    /// start only where host capacity has room now; they never push other functions' workers out.
    func warmUp() {
        let effects = state.withLock { state in
            state.machine.warmUp(prewarm: deployment.manifest.prewarm).flatMap {
                admit($0, background: true, in: &state)
            }
        }
        run(effects)
    }

    /// Gives the worker's slot back to host admission once its process is gone (or never started).
    private func releaseSlot(_ id: Int, in state: inout State) -> [Effect] {
        guard let slot = state.slots.removeValue(forKey: id) else { return [] }
        let effects = environment.admission.release(slot)
        return effects.isEmpty ? [] : [.admission(effects)]
    }

    // MARK: Worker lifecycle

    /// Starts worker `id`; run by the host's launcher in its own task.
    func launch(_ id: Int) async {
        let environment = self.environment
        let deployment = self.deployment
        // Once this worker is ready (or failed), the pool of parked helpers is refilled: off this start's path.
        let parked = environment.parkedHelpers?.take()
        defer {
            if let helpers = environment.parkedHelpers, helpers.count < helpers.capacity {
                environment.launcher.refill(helpers)
            }
        }
        let eventLoop =
            eventLoops[state.withLock { $0.machine.affinity(of: id) }] ?? environment.eventLoopGroup.next()
        do {
            let worker = try await WorkerProcess.launch(
                id: id,
                name: "\(deployment.name)-\(WorkerNames.next())",
                plan: plan,
                parked: parked,
                initTimeout: environment.configuration.initTimeout,
                supervisor: environment.supervisor,
                eventLoopGroup: eventLoop,
                logSink: { worker, stream, line in
                    environment.logSink.append(
                        LogLine(
                            timeUs: WallClock.microseconds(), tenant: deployment.tenant, function: deployment.name,
                            version: deployment.version, invocationID: worker?.currentInvocationID, stream: stream,
                            line: line
                        )
                    )
                },
                onExit: { [weak self] status in self?.workerExited(id, status) }
            )
            environment.logger.debug(
                "worker ready",
                metadata: [
                    "function.name": "\(deployment.name)", "worker.pid": "\(worker.pid)",
                    "worker.init_ms": "\(worker.initDuration.milliseconds)",
                ]
            )
            let effects = state.withLock { state -> [Effect] in
                if worker.exit.value != nil {
                    return releaseSlot(id, in: &state)
                        + resolve(state.machine.workerExited(id), in: &state, error: Self.crashedBeforeUse)
                }
                state.workers[id] = worker
                state.machine.setAffinity(Self.affinity(of: eventLoop), of: id)
                return resolve(state.machine.workerReady(id), in: &state)
            }
            run(effects)
        } catch {
            environment.logger.info(
                "worker failed to start", metadata: ["function.name": "\(deployment.name)", "error": "\(error)"]
            )
            let effects = state.withLock { state in
                releaseSlot(id, in: &state) + resolve(state.machine.workerExited(id), in: &state, error: error)
            }
            run(effects)
        }
    }

    /// The affinity of the calls and workers on `eventLoop`.
    static func affinity(of eventLoop: any EventLoop) -> PoolStateMachine.Affinity {
        Int(bitPattern: UInt(bitPattern: ObjectIdentifier(eventLoop)))
    }

    private static let crashedBeforeUse = VergeError(.initFailed, "worker exited right after it was ready")

    private func workerExited(_ id: Int, _ status: ProcessExit) {
        let (worker, effects) = state.withLock { state -> (WorkerProcess?, [Effect]) in
            // A worker that never became ready is accounted for by `launch`, which knows why it failed.
            guard let worker = state.workers.removeValue(forKey: id) else { return (nil, []) }
            state.idleTimers.removeValue(forKey: id).map(deadlines.disarm)
            // The slot first: a function waiting for room gets it before this pool's own replacement asks.
            let released = releaseSlot(id, in: &state)
            return (
                worker, released + resolve(state.machine.workerExited(id), in: &state, error: Self.crashedBeforeUse)
            )
        }
        worker?.reaped()
        environment.logger.debug(
            "worker exited",
            metadata: [
                "function.name": "\(deployment.name)", "worker.pid": "\(worker?.pid ?? 0)", "worker.exit": "\(status)",
            ]
        )
        run(effects)
    }

    private func idleTimerFired(_ id: Int, generation: Int) {
        let effects = state.withLock { state in
            resolve(state.machine.idleTimerFired(id, generation: generation), in: &state)
        }
        run(effects)
    }

    /// Stops taking calls without waiting: idle workers stop now, busy ones once their call ends. Used when a
    /// newer version replaces this one or the function is removed.
    func retire() {
        let effects = state.withLock { state in stopAccepting(&state) }
        run(effects)
    }

    private func stopAccepting(_ state: inout State) -> [Effect] {
        let (stop, failed) = state.machine.shutdown()
        var effects: [Effect] = stop.compactMap { state.workers[$0].map(Effect.stop) }
        // Workers still waiting for host capacity will never be needed.
        for id in state.machine.awaitingRoom.sorted() {
            guard let slot = state.slots[id], let withdrawn = environment.admission.cancel(slot) else { continue }
            state.slots[id] = nil
            _ = state.machine.workerExited(id)
            if !withdrawn.isEmpty { effects.append(.admission(withdrawn)) }
        }
        for id in failed {
            if let waiter = state.waiters.removeValue(forKey: id) {
                effects.append(
                    .fail(
                        waiter.continuation, waiter.timer,
                        VergeError(.shuttingDown, "the function version was replaced or removed")))
            }
        }
        return effects
    }

    /// Stops taking calls, stops idle workers now and waits until every worker has exited; workers still busy
    /// get until `deadline` to finish, then are killed.
    func shutdown(deadline: Duration) async {
        let effects = state.withLock { state in stopAccepting(&state) }
        run(effects)
        let clock = ContinuousClock()
        let end = clock.now + deadline
        while clock.now < end, state.withLock({ !$0.machine.workers.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let remaining = state.withLock { Array($0.workers.values) }
        for worker in remaining { worker.kill() }
        for worker in remaining { _ = await worker.exit.wait() }
    }

    // MARK: Effects

    /// Queue, idle and call deadlines share the supervisor's sweep: no loop timer per call.
    private var deadlines: DeadlineSweep { environment.supervisor.deadlines }

    private func resolve(
        _ action: PoolStateMachine.Action, in state: inout State, error: (any Error)? = nil
    ) -> [Effect] {
        switch action {
        case .none:
            return []
        case .handOver(let worker, let waiterID):
            guard let waiter = state.waiters.removeValue(forKey: waiterID), let process = state.workers[worker] else {
                return []
            }
            // A call served by a worker that freed up may leave a worker waiting for host capacity unneeded.
            return [.resume(waiter.continuation, waiter.timer, process)] + withdrawUnneededRequests(in: &state)
        case .startIdleTimer(let worker, let generation):
            var effects: [Effect] = [.idleTimer(worker: worker, generation: generation)]
            if let slot = state.slots[worker] {
                let reclaims = environment.admission.idle(slot)
                if !reclaims.isEmpty { effects.append(.admission(reclaims)) }
            }
            return effects
        case .stopWorker(let worker):
            return state.workers[worker].map { [.stop($0)] } ?? []
        case .startWorker(let worker):
            return admit(worker, background: false, in: &state)
        case .keepWarm(let worker):
            return admit(worker, background: true, in: &state)
        case .failWaiter(let id, let replacement):
            let failure = (error as? VergeError) ?? VergeError(.initFailed, "worker failed to start", underlying: error)
            var effects: [Effect] =
                state.waiters.removeValue(forKey: id).map { [.fail($0.continuation, $0.timer, failure)] } ?? []
            if let replacement { effects += admit(replacement, background: false, in: &state) }
            return effects
        }
    }

    private func run(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .resume(let continuation, let timer, let worker):
                timer.map(deadlines.disarm)
                state.withLock { $0.idleTimers.removeValue(forKey: worker.id) }.map(deadlines.disarm)
                continuation.resume(returning: worker)
            case .fail(let continuation, let timer, let error):
                timer.map(deadlines.disarm)
                continuation.resume(throwing: error)
            case .idleTimer(let worker, let generation):
                let timer = deadlines.arm(after: idleTimeout) { [weak self] in
                    self?.idleTimerFired(worker, generation: generation)
                }
                state.withLock { $0.idleTimers.updateValue(timer, forKey: worker) }.map(deadlines.disarm)
            case .stop(let worker):
                state.withLock { $0.idleTimers.removeValue(forKey: worker.id) }.map(deadlines.disarm)
                worker.stop(grace: environment.configuration.stopGracePeriod)
            case .launch(let worker):
                environment.launcher.request(self, worker: worker)
            case .admission(let effects):
                effects.run()
            }
        }
    }
}

/// Names of workers that are unique among the host process's workers (they name their cgroups).
enum WorkerNames {
    private static let counter = Atomic<Int>(0)

    static func next() -> Int {
        counter.add(1, ordering: .relaxed).newValue
    }
}
