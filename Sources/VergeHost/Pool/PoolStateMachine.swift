import DequeModule

/// The admission and lifecycle rules of one function version's worker pool, with no processes, sockets or clocks:
/// events go in, actions come out. `FunctionPool` owns it under a lock and carries the actions out.
///
/// Workers move `starting → idle ⇄ busy → stopping → (gone)`; any state can end in `workerExited`.
/// A call takes the most recently used idle worker (so the others age out and the pool can shrink to zero),
/// otherwise waits in FIFO order while a new worker starts, up to `maxWorkers`.
struct PoolStateMachine {
    typealias WorkerID = Int
    typealias WaiterID = Int

    enum WorkerState: Equatable {
        case starting
        /// `generation` identifies this idle period, so a stale idle timer cannot stop a worker that worked since.
        case idle(generation: Int)
        case busy
        case stopping
    }

    enum AcquireAction: Equatable {
        /// Use this idle worker now.
        case use(WorkerID)
        /// The caller was queued and a new worker must be started for the queue.
        case startWorker(WorkerID)
        /// The caller was queued; a worker that is starting or busy will serve it.
        case wait
        /// The pool is shutting down.
        case reject
    }

    enum Action: Equatable {
        case none
        /// Give `worker` to `waiter`.
        case handOver(worker: WorkerID, waiter: WaiterID)
        /// `worker` is idle: arm its idle timer for this `generation`.
        case startIdleTimer(worker: WorkerID, generation: Int)
        /// Stop `worker` (it was idle too long, or the pool is shutting down).
        case stopWorker(WorkerID)
        /// Start a new worker for the waiting calls.
        case startWorker(WorkerID)
        /// A worker failed before it was ready: the call it was started for fails; when more calls wait without a
        /// starting worker and there is room, another worker starts for them.
        case failWaiter(WaiterID, thenStart: WorkerID?)
    }

    let maxWorkers: Int
    private(set) var workers: [WorkerID: WorkerState] = [:]
    private(set) var waiters: Deque<WaiterID> = []
    /// Idle workers, most recently used last.
    private var idleStack: [WorkerID] = []
    private var nextWorkerID = 1
    private var nextGeneration = 1
    private(set) var isShuttingDown = false

    init(maxWorkers: Int) {
        precondition(maxWorkers >= 1)
        self.maxWorkers = maxWorkers
    }

    var startingCount: Int { workers.values.count { $0 == .starting } }
    var busyCount: Int { workers.values.count { $0 == .busy } }
    var idleCount: Int { idleStack.count }
    /// Workers that exist as processes (any state).
    var liveCount: Int { workers.count }

    mutating func acquire(_ waiter: WaiterID) -> AcquireAction {
        if isShuttingDown { return .reject }
        if let worker = idleStack.popLast() {
            workers[worker] = .busy
            return .use(worker)
        }
        waiters.append(waiter)
        if startingCount < waiters.count, workers.count < maxWorkers {
            return .startWorker(newWorker())
        }
        return .wait
    }

    /// The caller gave up waiting (deadline or disconnect). Returns whether it was still queued.
    mutating func cancel(_ waiter: WaiterID) -> Bool {
        guard let index = waiters.firstIndex(of: waiter) else { return false }
        waiters.remove(at: index)
        return true
    }

    /// A started worker sent `ready`.
    mutating func workerReady(_ worker: WorkerID) -> Action {
        guard workers[worker] == .starting else { return .none }
        return assignOrIdle(worker)
    }

    /// The worker finished a call and can take another.
    mutating func release(_ worker: WorkerID) -> Action {
        guard workers[worker] == .busy else { return .none }
        return assignOrIdle(worker)
    }

    /// The worker cannot take another call (protocol error, timed out): it is being stopped.
    mutating func retire(_ worker: WorkerID) {
        guard workers[worker] != nil else { return }
        idleStack.removeAll { $0 == worker }
        workers[worker] = .stopping
    }

    mutating func idleTimerFired(_ worker: WorkerID, generation: Int) -> Action {
        guard workers[worker] == .idle(generation: generation) else { return .none }
        idleStack.removeAll { $0 == worker }
        workers[worker] = .stopping
        return .stopWorker(worker)
    }

    /// The worker's process is gone. `wasReady` tells whether it ever sent `ready`.
    mutating func workerExited(_ worker: WorkerID) -> Action {
        guard let state = workers.removeValue(forKey: worker) else { return .none }
        idleStack.removeAll { $0 == worker }
        if isShuttingDown { return .none }
        if state == .starting {
            // It died before serving anyone. The oldest call without a starting worker of its own fails with the
            // start-up error (each call gets its own attempt, so one failed start never fails a whole queue);
            // calls covered by other starting workers keep waiting.
            guard waiters.count > startingCount else { return .none }
            let failed = waiters.removeFirst()
            let replacement = waiters.count > startingCount && workers.count < maxWorkers ? newWorker() : nil
            return .failWaiter(failed, thenStart: replacement)
        }
        // A busy or stopping worker went away: start a replacement if calls are waiting without cover.
        if waiters.count > startingCount, workers.count < maxWorkers {
            return .startWorker(newWorker())
        }
        return .none
    }

    /// Stops accepting calls: every idle worker is stopped and queued calls fail.
    mutating func shutdown() -> (stop: [WorkerID], failed: [WaiterID]) {
        isShuttingDown = true
        let idle = idleStack
        idleStack.removeAll()
        for worker in idle { workers[worker] = .stopping }
        let failed = Array(waiters)
        waiters.removeAll()
        return (idle, failed)
    }

    private mutating func newWorker() -> WorkerID {
        let id = nextWorkerID
        nextWorkerID += 1
        workers[id] = .starting
        return id
    }

    private mutating func assignOrIdle(_ worker: WorkerID) -> Action {
        if isShuttingDown {
            workers[worker] = .stopping
            return .stopWorker(worker)
        }
        if let waiter = waiters.popFirst() {
            workers[worker] = .busy
            return .handOver(worker: worker, waiter: waiter)
        }
        let generation = nextGeneration
        nextGeneration += 1
        workers[worker] = .idle(generation: generation)
        idleStack.append(worker)
        return .startIdleTimer(worker: worker, generation: generation)
    }
}
