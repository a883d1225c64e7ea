import DequeModule

/// The rules of one function version's worker pool, with no processes, sockets or clocks: events go in, actions
/// come out. `FunctionPool` owns it under a lock and carries the actions out.
///
/// Each worker follows its `WorkerLifecycle` (`starting → ready ⇄ busy → draining → exited`). A call takes the most
/// recently used ready worker (so the others age out and the pool can shrink to zero), otherwise waits in FIFO
/// order while a new worker starts, up to `maxWorkers`. A starting worker may first wait for room in the host
/// (`waitingForRoom`); at most `maxQueued` calls wait without a spawning worker of their own. Idle workers are
/// stopped by their idle timer except the last `minInstances`, which stay warm.
///
/// Calls and workers may carry an *affinity* (the host passes the event loop a call's connection and a worker's
/// socket live on): a call takes the most recently used idle worker of its own affinity when there is one, a freed
/// worker goes to the first of the oldest few waiting calls that shares its affinity, and a worker started for a
/// call gets that call's affinity. A call then stays on one thread from its client's socket to its worker's and
/// back. Affinity never passes a waiting call over more than ``affinityPatience`` times.
struct PoolStateMachine {
    typealias WorkerID = Int
    typealias WaiterID = Int
    /// Which event loop a call or worker is on; ``anyAffinity`` when it has none.
    typealias Affinity = Int
    static let anyAffinity: Affinity = 0
    /// How many of the oldest waiting calls a freed worker looks at for one of its own affinity.
    static let affinityWindow = 4
    /// How many times a waiting call may be passed over for a later call of the freed worker's affinity.
    static let affinityPatience = 2
    typealias WorkerState = WorkerLifecycle.State

    /// Why a call was turned away at once.
    enum Rejection: Equatable {
        /// The pool is shutting down (its version was replaced or removed, or the host stops).
        case shuttingDown
        /// `maxQueued` calls wait for capacity and the function has all its `maxWorkers`: its own cap (429).
        case functionAtCapacity
        /// `maxQueued` calls wait for capacity and the function's new workers wait for room in the host (503).
        case hostAtCapacity
    }

    enum AcquireAction: Equatable {
        /// Use this ready worker now.
        case use(WorkerID)
        /// The caller was queued and a new worker must be started for the queue.
        case startWorker(WorkerID)
        /// The caller was queued; a worker that is starting or busy will serve it.
        case wait
        case reject(Rejection)
    }

    enum Action: Equatable {
        case none
        /// Give `worker` to `waiter`.
        case handOver(worker: WorkerID, waiter: WaiterID)
        /// `worker` is idle: arm its idle timer for this `generation`.
        case startIdleTimer(worker: WorkerID, generation: Int)
        /// Stop `worker` (idle too long, reclaimed, yielded, or the pool is shutting down).
        case stopWorker(WorkerID)
        /// Start a new worker for the waiting calls.
        case startWorker(WorkerID)
        /// Start a worker no call waits for, to keep `minInstances` warm; it must not push other functions out.
        case keepWarm(WorkerID)
        /// A worker failed before it was ready: the call it was started for fails; when more calls wait without a
        /// starting worker and there is room, another worker starts for them.
        case failWaiter(WaiterID, thenStart: WorkerID?)
    }

    let maxWorkers: Int
    let minInstances: Int
    let maxQueued: Int
    private var lifecycles: [WorkerID: WorkerLifecycle] = [:]
    /// Starting workers that wait for room in the host (a host-wide admission grant) before they can be spawned.
    private(set) var awaitingRoom: Set<WorkerID> = []
    private(set) var waiters: Deque<WaiterID> = []
    /// Ready workers, most recently used last.
    private var idleStack: [WorkerID] = []
    /// The affinity of each worker and each waiting call that has one.
    private var workerAffinity: [WorkerID: Affinity] = [:]
    private var waiterAffinity: [WaiterID: Affinity] = [:]
    /// How many hand-overs have passed over each waiting call (for a later call of the freed worker's affinity).
    private var passedOver: [WaiterID: Int] = [:]
    private var nextWorkerID = 1
    private var nextGeneration = 1
    private(set) var isShuttingDown = false

    init(maxWorkers: Int, minInstances: Int = 0, maxQueued: Int = .max) {
        precondition(maxWorkers >= 1 && (0...maxWorkers).contains(minInstances) && maxQueued >= 0)
        self.maxWorkers = maxWorkers
        self.minInstances = minInstances
        self.maxQueued = maxQueued
    }

    /// Each worker's state (exited workers are forgotten).
    var workers: [WorkerID: WorkerState] { lifecycles.mapValues(\.state) }

    var startingCount: Int { count(.starting) }
    /// Starting workers being spawned (not waiting for room in the host).
    var spawningCount: Int { startingCount - awaitingRoom.count }
    /// Waiting calls that no spawning worker will serve: they wait for capacity.
    var waitingForCapacity: Int { max(0, waiters.count - spawningCount) }
    var busyCount: Int { count(.busy) }
    var drainingCount: Int { count(.draining) }
    var idleCount: Int { idleStack.count }
    /// Workers that exist as processes or are about to (any state).
    var liveCount: Int { lifecycles.count }
    /// Workers not being stopped.
    var activeCount: Int { liveCount - drainingCount }

    private func count(_ state: WorkerState) -> Int { lifecycles.values.count { $0.state == state } }

    func state(of worker: WorkerID) -> WorkerState? { lifecycles[worker]?.state }

    /// The affinity `worker` was started with or was given (``anyAffinity`` when none).
    func affinity(of worker: WorkerID) -> Affinity { workerAffinity[worker] ?? Self.anyAffinity }

    /// Records where `worker` lives once it is known (a worker started with no affinity).
    mutating func setAffinity(_ affinity: Affinity, of worker: WorkerID) {
        guard lifecycles[worker] != nil else { return }
        workerAffinity[worker] = affinity == Self.anyAffinity ? nil : affinity
    }

    mutating func acquire(_ waiter: WaiterID, affinity: Affinity = anyAffinity) -> AcquireAction {
        if isShuttingDown { return .reject(.shuttingDown) }
        if !idleStack.isEmpty {
            // The most recently used idle worker of the call's affinity, else the most recently used one.
            let index =
                affinity == Self.anyAffinity
                ? idleStack.count - 1
                : idleStack.lastIndex { workerAffinity[$0] == affinity } ?? idleStack.count - 1
            let worker = idleStack.remove(at: index)
            _ = lifecycles[worker]!.assign()
            return .use(worker)
        }
        if waitingForCapacity >= maxQueued {
            if liveCount - awaitingRoom.count >= maxWorkers { return .reject(.functionAtCapacity) }
            // With no worker waiting for room, the host has shown no sign of being full: a new worker may start.
            if !awaitingRoom.isEmpty { return .reject(.hostAtCapacity) }
        }
        waiters.append(waiter)
        if affinity != Self.anyAffinity { waiterAffinity[waiter] = affinity }
        if startingCount < waiters.count, liveCount < maxWorkers {
            return .startWorker(newWorker(affinity: affinity))
        }
        return .wait
    }

    /// The caller gave up waiting (deadline or disconnect). Returns whether it was still queued.
    mutating func cancel(_ waiter: WaiterID) -> Bool {
        guard let index = waiters.firstIndex(of: waiter) else { return false }
        removeWaiter(at: index)
        return true
    }

    /// The host has no room for starting `worker` yet: it waits for a grant.
    mutating func waitingForRoom(_ worker: WorkerID) {
        guard lifecycles[worker]?.state == .starting else { return }
        awaitingRoom.insert(worker)
    }

    /// The host granted room for `worker`: it is spawned now. Returns whether it was waiting for room.
    mutating func roomGranted(_ worker: WorkerID) -> Bool {
        awaitingRoom.remove(worker) != nil
    }

    /// Gives up a starting worker that was never launched (its host-wide admission request is withdrawn or refused)
    /// when no call needs it: more workers are starting than calls wait. Returns whether it was given up.
    mutating func abandonStart(_ worker: WorkerID) -> Bool {
        guard lifecycles[worker]?.state == .starting, startingCount > waiters.count else { return false }
        lifecycles[worker] = nil
        workerAffinity[worker] = nil
        awaitingRoom.remove(worker)
        return true
    }

    /// Starts the workers a new version should have before any call: `minInstances`, or one when `prewarm`.
    mutating func warmUp(prewarm: Bool) -> [WorkerID] {
        guard !isShuttingDown else { return [] }
        let target = max(minInstances, prewarm ? 1 : 0)
        return (0..<max(0, min(target - activeCount, maxWorkers - liveCount))).map { _ in newWorker() }
    }

    /// A started worker sent `ready`.
    mutating func workerReady(_ worker: WorkerID) -> Action {
        guard lifecycles[worker]?.state == .starting else { return .none }
        return assignOrIdle(worker)
    }

    /// The worker finished a call and can take another. With `yield`, it gives its place up instead (host-wide
    /// fairness: another function waits for room) and is stopped; a call still waiting here gets a new worker
    /// once host capacity allows.
    mutating func release(_ worker: WorkerID, yield: Bool = false) -> Action {
        guard lifecycles[worker]?.state == .busy else { return .none }
        if yield {
            _ = lifecycles[worker]!.drain()
            return .stopWorker(worker)
        }
        return assignOrIdle(worker)
    }

    /// The worker cannot take another call (protocol error, timed out): it is being stopped.
    mutating func retire(_ worker: WorkerID) {
        guard lifecycles[worker] != nil else { return }
        idleStack.removeAll { $0 == worker }
        _ = lifecycles[worker]!.drain()
    }

    /// The host reclaims an idle worker to make room for another function's waiting call. Applies to ready workers
    /// only — also to those `minInstances` keeps: host capacity comes first.
    mutating func reclaim(_ worker: WorkerID) -> Action {
        guard lifecycles[worker]?.isReady == true else { return .none }
        idleStack.removeAll { $0 == worker }
        _ = lifecycles[worker]!.drain()
        return .stopWorker(worker)
    }

    mutating func idleTimerFired(_ worker: WorkerID, generation: Int) -> Action {
        guard lifecycles[worker]?.state == .ready(generation: generation) else { return .none }
        // The last `minInstances` workers stay warm; this idle period simply has no end.
        if activeCount <= minInstances { return .none }
        _ = lifecycles[worker]!.idleExpired(generation: generation)
        idleStack.removeAll { $0 == worker }
        return .stopWorker(worker)
    }

    /// The worker's process is gone (or its start was refused before a process existed).
    mutating func workerExited(_ worker: WorkerID) -> Action {
        guard var lifecycle = lifecycles.removeValue(forKey: worker), let previous = lifecycle.exit() else {
            return .none
        }
        idleStack.removeAll { $0 == worker }
        awaitingRoom.remove(worker)
        workerAffinity[worker] = nil
        if isShuttingDown { return .none }
        if previous == .starting {
            // It died before serving anyone. The oldest call without a starting worker of its own fails with the
            // start-up error (each call gets its own attempt, so one failed start never fails a whole queue);
            // calls covered by other starting workers keep waiting. A failed start is not retried for
            // `minInstances` alone: a function that cannot start would otherwise be started forever.
            guard waiters.count > startingCount else { return .none }
            let failed = removeWaiter(at: 0)
            let replacement =
                waiters.count > startingCount && liveCount < maxWorkers
                ? newWorker(affinity: oldestWaiterAffinity) : nil
            return .failWaiter(failed, thenStart: replacement)
        }
        // A ready, busy or draining worker went away: start a replacement if calls are waiting without cover, or
        // if the pool fell below `minInstances`.
        if waiters.count > startingCount, liveCount < maxWorkers {
            return .startWorker(newWorker(affinity: oldestWaiterAffinity))
        }
        if activeCount < minInstances, liveCount < maxWorkers {
            return .keepWarm(newWorker())
        }
        return .none
    }

    /// Stops accepting calls: every idle worker is stopped and queued calls fail.
    mutating func shutdown() -> (stop: [WorkerID], failed: [WaiterID]) {
        isShuttingDown = true
        let idle = idleStack
        idleStack.removeAll()
        for worker in idle { _ = lifecycles[worker]!.drain() }
        let failed = Array(waiters)
        waiters.removeAll()
        waiterAffinity.removeAll()
        passedOver.removeAll()
        return (idle, failed)
    }

    private mutating func newWorker(affinity: Affinity = anyAffinity) -> WorkerID {
        let id = nextWorkerID
        nextWorkerID += 1
        lifecycles[id] = WorkerLifecycle()
        if affinity != Self.anyAffinity { workerAffinity[id] = affinity }
        return id
    }

    /// The affinity of the oldest waiting call: a worker started for the queue lives where that call does.
    private var oldestWaiterAffinity: Affinity { waiters.first.flatMap { waiterAffinity[$0] } ?? Self.anyAffinity }

    @discardableResult
    private mutating func removeWaiter(at index: Int) -> WaiterID {
        let waiter = waiters.remove(at: index)
        waiterAffinity[waiter] = nil
        passedOver[waiter] = nil
        return waiter
    }

    /// The waiting call a freed `worker` goes to: the first of the oldest ``affinityWindow`` with the worker's
    /// affinity, unless a call ahead of it has been passed over ``affinityPatience`` times already; otherwise the
    /// oldest. Every call it passes over counts one more.
    private mutating func nextWaiter(for worker: WorkerID) -> WaiterID? {
        guard !waiters.isEmpty else { return nil }
        if let affinity = workerAffinity[worker], waiterAffinity[waiters[0]] != affinity,
            let index = waiters.prefix(Self.affinityWindow).firstIndex(where: { waiterAffinity[$0] == affinity }),
            !waiters.prefix(index).contains(where: { passedOver[$0, default: 0] >= Self.affinityPatience })
        {
            for waiter in waiters.prefix(index) { passedOver[waiter, default: 0] += 1 }
            return removeWaiter(at: index)
        }
        return removeWaiter(at: 0)
    }

    private mutating func assignOrIdle(_ worker: WorkerID) -> Action {
        if isShuttingDown {
            _ = lifecycles[worker]!.drain()
            return .stopWorker(worker)
        }
        if let waiter = nextWaiter(for: worker) {
            _ = lifecycles[worker]!.assign()
            return .handOver(worker: worker, waiter: waiter)
        }
        let generation = nextGeneration
        nextGeneration += 1
        if lifecycles[worker]!.state == .starting {
            _ = lifecycles[worker]!.becameReady(generation: generation)
        } else {
            _ = lifecycles[worker]!.finish(generation: generation)
        }
        idleStack.append(worker)
        return .startIdleTimer(worker: worker, generation: generation)
    }
}
