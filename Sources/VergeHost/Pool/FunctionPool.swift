import Logging
import NIOCore
import Synchronization
import VergeBundle
import VergeCore
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
    let logSink: FunctionLogSink
    let logger: Logger
    /// Whether each pool's workers get a user of their own (see `WorkerIdentity`).
    let workerUsers: Bool
}

/// The process pool of one function version: it grows on demand up to the manifest's `max_workers`, reaps workers
/// idle for longer than the idle timeout and, at zero, cold-starts the next call's worker. Rules live in
/// `PoolStateMachine`; this type carries its actions out.
final class FunctionPool: Sendable {
    let deployment: Deployment
    let idleTimeout: Duration
    private let environment: PoolEnvironment
    private let plan: WorkerLaunchPlan
    private let state: Mutex<State>

    private struct State {
        var machine: PoolStateMachine
        var workers: [Int: WorkerProcess] = [:]
        var waiters: [Int: Waiter] = [:]
        var nextWaiterID = 1
        /// The armed idle timer of each idle worker, cancelled when the worker is used or stops, so a busy host does
        /// not accumulate a timer per call.
        var idleTimers: [Int: SupervisorTimer] = [:]
    }

    private struct Waiter {
        var continuation: CheckedContinuation<WorkerProcess, any Error>
        var timer: SupervisorTimer?
    }

    /// Side effects decided under the lock, carried out after it is released.
    private enum Effect {
        case resume(CheckedContinuation<WorkerProcess, any Error>, SupervisorTimer?, WorkerProcess)
        case fail(CheckedContinuation<WorkerProcess, any Error>, SupervisorTimer?, VergeError)
        case idleTimer(worker: Int, generation: Int)
        case stop(WorkerProcess)
        case launch(Int)
    }

    init(deployment: Deployment, environment: PoolEnvironment) {
        self.deployment = deployment
        self.environment = environment
        self.idleTimeout =
            deployment.manifest.idleTimeoutSeconds.map { .seconds($0) } ?? environment.configuration.idleTimeout
        var credentials = environment.workerUsers ? WorkerIdentity.allocate() : nil
        if let identity = credentials {
            do {
                try WorkerIdentity.restrict(bundle: deployment.bundleDirectory, to: identity.gid)
            } catch {
                // Without a bundle its user can read, a separate user would only break the function.
                environment.logger.error(
                    "cannot give the bundle to its worker user; workers run as the host's user",
                    metadata: ["function.name": "\(deployment.name)", "error": "\(error)"]
                )
                credentials = nil
            }
        }
        self.plan = WorkerLaunchPlan(
            manifest: deployment.manifest, bundleDirectory: deployment.bundleDirectory,
            configuration: environment.configuration, credentials: credentials, secrets: deployment.secrets
        )
        self.state = Mutex(State(machine: PoolStateMachine(maxWorkers: deployment.manifest.maxWorkers)))
    }

    /// Counts of worker processes by state.
    struct Stats: Sendable, Equatable, Codable {
        var live: Int
        var idle: Int
        var busy: Int
        var starting: Int
        var queued: Int
    }

    var stats: Stats {
        state.withLock {
            Stats(
                live: $0.machine.liveCount, idle: $0.machine.idleCount, busy: $0.machine.busyCount,
                starting: $0.machine.startingCount, queued: $0.machine.waiters.count
            )
        }
    }

    /// Pids of the live workers (for diagnostics and tests).
    var workerPIDs: [Int32] { state.withLock { $0.workers.values.map(\.pid).sorted() } }

    // MARK: Acquire and release

    /// A worker for one invocation: an idle one at once, otherwise after one starts or frees up. Fails with
    /// `overloaded` when none is free within `queueTimeout`, with `init_failed` when the worker started for this
    /// call cannot start, and with `shutting_down` once the pool stops.
    func acquire(queueTimeout: Duration) async throws -> Lease {
        let clock = ContinuousClock()
        let start = clock.now
        let waiterID = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        let worker = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<WorkerProcess, any Error>) in
                let (effects, queued) = state.withLock { state -> ([Effect], Bool) in
                    switch state.machine.acquire(waiterID) {
                    case .use(let id):
                        return ([.resume(continuation, nil, state.workers[id]!)], false)
                    case .reject:
                        return (
                            [.fail(continuation, nil, VergeError(.shuttingDown, "the host is shutting down"))], false
                        )
                    case .wait:
                        state.waiters[waiterID] = Waiter(continuation: continuation, timer: nil)
                        return ([], true)
                    case .startWorker(let id):
                        state.waiters[waiterID] = Waiter(continuation: continuation, timer: nil)
                        return ([.launch(id)], true)
                    }
                }
                if queued {
                    let timer = environment.supervisor.startTimer(after: queueTimeout) { [weak self] in
                        self?.abandon(
                            waiterID,
                            VergeError(
                                .overloaded,
                                "no worker of '\(self?.deployment.name ?? "")' was free within \(queueTimeout)")
                        )
                    }
                    let stillWaiting = state.withLock { state -> Bool in
                        guard state.waiters[waiterID] != nil else { return false }
                        state.waiters[waiterID]!.timer = timer
                        return true
                    }
                    if !stillWaiting { timer.cancel() }
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
    /// protocol) is killed instead and replaced on demand.
    func release(_ lease: Lease, reusable: Bool) {
        let worker = lease.worker
        if reusable, worker.exit.value == nil {
            let effects = state.withLock { state in resolve(state.machine.release(worker.id), in: &state) }
            run(effects)
        } else {
            state.withLock { $0.machine.retire(worker.id) }
            worker.kill()
        }
    }

    private func abandon(_ waiterID: Int, _ error: VergeError) {
        let waiter = state.withLock { state -> Waiter? in
            guard state.machine.cancel(waiterID) else { return nil }
            return state.waiters.removeValue(forKey: waiterID)
        }
        guard let waiter else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(throwing: error)
    }

    // MARK: Worker lifecycle

    /// Starts worker `id`; run by the host's launcher in its own task.
    func launch(_ id: Int) async {
        let environment = self.environment
        let deployment = self.deployment
        do {
            let worker = try await WorkerProcess.launch(
                id: id,
                plan: plan,
                initTimeout: environment.configuration.initTimeout,
                supervisor: environment.supervisor,
                eventLoopGroup: environment.eventLoopGroup,
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
                    return resolve(state.machine.workerExited(id), in: &state, error: Self.crashedBeforeUse)
                }
                state.workers[id] = worker
                return resolve(state.machine.workerReady(id), in: &state)
            }
            run(effects)
        } catch {
            environment.logger.info(
                "worker failed to start", metadata: ["function.name": "\(deployment.name)", "error": "\(error)"]
            )
            let effects = state.withLock { state in
                resolve(state.machine.workerExited(id), in: &state, error: error)
            }
            run(effects)
        }
    }

    private static let crashedBeforeUse = VergeError(.initFailed, "worker exited right after it was ready")

    private func workerExited(_ id: Int, _ status: ProcessExit) {
        let (worker, effects) = state.withLock { state -> (WorkerProcess?, [Effect]) in
            // A worker that never became ready is accounted for by `launch`, which knows why it failed.
            guard let worker = state.workers.removeValue(forKey: id) else { return (nil, []) }
            state.idleTimers.removeValue(forKey: id)?.cancel()
            return (worker, resolve(state.machine.workerExited(id), in: &state, error: Self.crashedBeforeUse))
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
            return [.resume(waiter.continuation, waiter.timer, process)]
        case .startIdleTimer(let worker, let generation):
            return [.idleTimer(worker: worker, generation: generation)]
        case .stopWorker(let worker):
            return state.workers[worker].map { [.stop($0)] } ?? []
        case .startWorker(let worker):
            return [.launch(worker)]
        case .failWaiter(let id, let replacement):
            let failure = (error as? VergeError) ?? VergeError(.initFailed, "worker failed to start", underlying: error)
            var effects: [Effect] =
                state.waiters.removeValue(forKey: id).map { [.fail($0.continuation, $0.timer, failure)] } ?? []
            if let replacement { effects.append(.launch(replacement)) }
            return effects
        }
    }

    private func run(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .resume(let continuation, let timer, let worker):
                timer?.cancel()
                state.withLock { $0.idleTimers.removeValue(forKey: worker.id) }?.cancel()
                continuation.resume(returning: worker)
            case .fail(let continuation, let timer, let error):
                timer?.cancel()
                continuation.resume(throwing: error)
            case .idleTimer(let worker, let generation):
                let timer = environment.supervisor.startTimer(after: idleTimeout) { [weak self] in
                    self?.idleTimerFired(worker, generation: generation)
                }
                state.withLock { $0.idleTimers.updateValue(timer, forKey: worker) }?.cancel()
            case .stop(let worker):
                state.withLock { $0.idleTimers.removeValue(forKey: worker.id) }?.cancel()
                worker.stop(grace: environment.configuration.stopGracePeriod)
            case .launch(let worker):
                environment.launcher.request(self, worker: worker)
            }
        }
    }
}
