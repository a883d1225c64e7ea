import Testing
import VergeCore

@testable import VergeHost

@Suite struct PoolStateMachineTests {
    typealias Machine = PoolStateMachine

    /// Drives a pool to one ready worker that is now busy with `waiter`.
    private static func busyWorker(_ machine: inout Machine, waiter: Int) -> Int {
        guard case .startWorker(let worker) = machine.acquire(waiter) else {
            Issue.record("expected a worker to start")
            return -1
        }
        #expect(machine.workerReady(worker) == .handOver(worker: worker, waiter: waiter))
        return worker
    }

    /// Drives a pool to one idle worker and returns it with the generation of its idle timer.
    private static func idleWorker(_ machine: inout Machine, waiter: Int) -> (worker: Int, generation: Int) {
        let worker = busyWorker(&machine, waiter: waiter)
        guard case .startIdleTimer(worker, let generation) = machine.release(worker) else {
            Issue.record("expected the worker to go idle")
            return (worker, -1)
        }
        return (worker, generation)
    }

    // MARK: Acquire

    @Test func firstAcquireOnAnEmptyPoolStartsAWorkerAndWaits() {
        var machine = Machine(maxWorkers: 3)
        #expect(machine.liveCount == 0)
        #expect(machine.acquire(1) == .startWorker(1))
        #expect(machine.startingCount == 1)
        #expect(machine.liveCount == 1)
        #expect(Array(machine.waiters) == [1])
        #expect(machine.idleCount == 0)
        #expect(machine.busyCount == 0)
    }

    @Test func readyWorkerServesTheOldestWaiterFirst() {
        var machine = Machine(maxWorkers: 1)
        #expect(machine.acquire(10) == .startWorker(1))
        #expect(machine.acquire(20) == .wait)
        #expect(machine.acquire(30) == .wait)
        #expect(machine.workerReady(1) == .handOver(worker: 1, waiter: 10))
        #expect(machine.busyCount == 1)
        #expect(machine.release(1) == .handOver(worker: 1, waiter: 20))
        #expect(machine.release(1) == .handOver(worker: 1, waiter: 30))
        #expect(machine.waiters.isEmpty)
        guard case .startIdleTimer(worker: 1, _) = machine.release(1) else {
            Issue.record("the last release should make the worker idle")
            return
        }
        #expect(machine.idleCount == 1)
    }

    @Test func readyIsIgnoredForWorkersThatAreNotStarting() {
        var machine = Machine(maxWorkers: 2)
        #expect(machine.workerReady(42) == .none)
        let worker = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.workerReady(worker) == .none)
        #expect(machine.busyCount == 1)
    }

    @Test func concurrentAcquiresStartAnotherWorkerWhileTheMaximumAllows() {
        var machine = Machine(maxWorkers: 4)
        #expect(machine.acquire(1) == .startWorker(1))
        #expect(machine.acquire(2) == .startWorker(2))
        #expect(machine.startingCount == 2)
        #expect(machine.workerReady(1) == .handOver(worker: 1, waiter: 1))
        // Waiter 2 is covered by worker 2, still starting; waiter 3 is not.
        #expect(machine.acquire(3) == .startWorker(3))
        #expect(machine.startingCount == 2)
        #expect(machine.liveCount == 3)
    }

    @Test func acquireStartsNoWorkerWhileTheStartingOnesCoverTheQueue() {
        var machine = Machine(maxWorkers: 4)
        #expect(machine.acquire(1) == .startWorker(1))
        let cancelled = machine.cancel(1)
        #expect(cancelled)
        // Worker 1 is still starting with nobody waiting: it covers the next caller.
        #expect(machine.acquire(2) == .wait)
        #expect(machine.liveCount == 1)
        #expect(machine.acquire(3) == .startWorker(2))
    }

    @Test(arguments: [1, 2, 5])
    func maxWorkersIsNeverExceeded(maxWorkers: Int) {
        var machine = Machine(maxWorkers: maxWorkers)
        for waiter in 1...maxWorkers {
            #expect(machine.acquire(waiter) == .startWorker(waiter))
        }
        for waiter in (maxWorkers + 1)...(maxWorkers + 3) {
            #expect(machine.acquire(waiter) == .wait)
        }
        #expect(machine.liveCount == maxWorkers)
        #expect(machine.startingCount == maxWorkers)
        #expect(machine.waiters.count == maxWorkers + 3)
    }

    // MARK: Release and idle

    @Test func releaseWithWaitersHandsTheWorkerOver() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.acquire(2) == .wait)
        #expect(machine.release(worker) == .handOver(worker: worker, waiter: 2))
        #expect(machine.busyCount == 1)
        #expect(machine.idleCount == 0)
    }

    @Test func releaseWithoutWaitersIdlesTheWorkerWithAFreshGeneration() {
        var machine = Machine(maxWorkers: 1)
        let (worker, first) = Self.idleWorker(&machine, waiter: 1)
        #expect(machine.idleCount == 1)
        #expect(machine.busyCount == 0)
        #expect(machine.workers[worker] == .ready(generation: first))

        #expect(machine.acquire(2) == .use(worker))
        guard case .startIdleTimer(worker, let second) = machine.release(worker) else {
            Issue.record("expected the worker to go idle again")
            return
        }
        #expect(second != first)
        #expect(machine.workers[worker] == .ready(generation: second))
    }

    @Test func releaseIsIgnoredForWorkersThatAreNotBusy() {
        var machine = Machine(maxWorkers: 1)
        let (worker, generation) = Self.idleWorker(&machine, waiter: 1)
        #expect(machine.release(worker) == .none)
        #expect(machine.release(99) == .none)
        #expect(machine.workers[worker] == .ready(generation: generation))
    }

    @Test func theMostRecentlyUsedIdleWorkerIsTakenFirst() {
        var machine = Machine(maxWorkers: 3)
        let workers = (1...3).map { Self.busyWorker(&machine, waiter: $0) }
        var generations: [Int: Int] = [:]
        for worker in workers {
            guard case .startIdleTimer(worker, let generation) = machine.release(worker) else {
                Issue.record("expected worker \(worker) to go idle")
                return
            }
            generations[worker] = generation
        }
        #expect(machine.idleCount == 3)
        #expect(machine.acquire(10) == .use(workers[2]))
        #expect(machine.acquire(11) == .use(workers[1]))
        // The least recently used worker keeps its timer and ages out.
        #expect(machine.idleTimerFired(workers[0], generation: generations[workers[0]]!) == .stopWorker(workers[0]))
        #expect(machine.workers[workers[0]] == .draining)
        #expect(machine.idleCount == 0)
        #expect(machine.acquire(12) == .wait)
    }

    @Test func aStaleIdleTimerDoesNothing() {
        var machine = Machine(maxWorkers: 1)
        let (worker, stale) = Self.idleWorker(&machine, waiter: 1)
        #expect(machine.acquire(2) == .use(worker))
        // The timer of the first idle period fires while the worker is busy ...
        #expect(machine.idleTimerFired(worker, generation: stale) == .none)
        #expect(machine.workers[worker] == .busy)
        guard case .startIdleTimer(worker, let current) = machine.release(worker) else {
            Issue.record("expected the worker to go idle")
            return
        }
        // ... or after it went idle again.
        #expect(machine.idleTimerFired(worker, generation: stale) == .none)
        #expect(machine.workers[worker] == .ready(generation: current))
        #expect(machine.idleCount == 1)
        #expect(machine.idleTimerFired(worker, generation: current) == .stopWorker(worker))
    }

    @Test func idleTimerStopsAnIdleWorker() {
        var machine = Machine(maxWorkers: 2)
        let (worker, generation) = Self.idleWorker(&machine, waiter: 1)
        #expect(machine.idleTimerFired(worker, generation: generation) == .stopWorker(worker))
        #expect(machine.workers[worker] == .draining)
        #expect(machine.idleCount == 0)
        #expect(machine.liveCount == 1)
        // Firing twice stops it once.
        #expect(machine.idleTimerFired(worker, generation: generation) == .none)
        #expect(machine.workerExited(worker) == .none)
        #expect(machine.liveCount == 0)
        // Scaled to zero: the next call cold-starts a new worker.
        #expect(machine.acquire(2) == .startWorker(2))
    }

    // MARK: Exits

    @Test func aWorkerThatDiesWhileStartingFailsTheCallItWasStartedForAndStartsAnotherForTheRest() {
        var machine = Machine(maxWorkers: 1)
        #expect(machine.acquire(1) == .startWorker(1))
        #expect(machine.acquire(2) == .wait)
        #expect(machine.workerExited(1) == .failWaiter(1, thenStart: 2))
        #expect(Array(machine.waiters) == [2])
        #expect(machine.startingCount == 1)
        #expect(machine.workerExited(2) == .failWaiter(2, thenStart: nil))
        #expect(machine.waiters.isEmpty)
        #expect(machine.liveCount == 0)
    }

    @Test func aFailedStartDoesNotFailCallsABusyWorkerWillServe() {
        var machine = Machine(maxWorkers: 2)
        #expect(machine.acquire(1) == .startWorker(1))
        #expect(machine.workerReady(1) == .handOver(worker: 1, waiter: 1))
        #expect(machine.acquire(2) == .startWorker(2))
        #expect(machine.acquire(3) == .wait)
        // Worker 2 dies starting: call 2 fails, call 3 gets a fresh start (room: 1 busy + 1 new ≤ 2).
        #expect(machine.workerExited(2) == .failWaiter(2, thenStart: 3))
        #expect(Array(machine.waiters) == [3])
        #expect(machine.release(1) == .handOver(worker: 1, waiter: 3))
    }

    @Test func aWorkerThatDiesWhileStartingFailsOnlyTheUncoveredWaiters() {
        var machine = Machine(maxWorkers: 3)
        #expect(machine.acquire(1) == .startWorker(1))
        #expect(machine.acquire(2) == .startWorker(2))
        #expect(machine.acquire(3) == .startWorker(3))
        #expect(machine.workerExited(2) == .failWaiter(1, thenStart: nil))
        #expect(Array(machine.waiters) == [2, 3])
        #expect(machine.startingCount == 2)
    }

    @Test func aWorkerThatDiesWhileStartingWithNobodyUncoveredFailsNoOne() {
        var machine = Machine(maxWorkers: 2)
        #expect(machine.acquire(1) == .startWorker(1))
        #expect(machine.acquire(2) == .startWorker(2))
        let cancelled = machine.cancel(1)
        #expect(cancelled)
        #expect(machine.workerExited(1) == .none)
        #expect(Array(machine.waiters) == [2])
        #expect(machine.startingCount == 1)
    }

    @Test func exitOfABusyWorkerWithWaitersStartsAReplacement() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.acquire(2) == .wait)
        let replacement = machine.workerExited(worker)
        #expect(replacement == .startWorker(worker + 1))
        #expect(machine.startingCount == 1)
        #expect(machine.liveCount == 1)
        #expect(machine.workerReady(worker + 1) == .handOver(worker: worker + 1, waiter: 2))
    }

    @Test func exitOfABusyWorkerWithoutWaitersStartsNothing() {
        var machine = Machine(maxWorkers: 2)
        let worker = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.workerExited(worker) == .none)
        #expect(machine.liveCount == 0)
        #expect(machine.workerExited(worker) == .none)
    }

    @Test func exitOfARetiredWorkerWithWaitersStartsAReplacement() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.acquire(2) == .wait)
        machine.retire(worker)
        #expect(machine.workers[worker] == .draining)
        #expect(machine.release(worker) == .none)
        #expect(machine.workerExited(worker) == .startWorker(worker + 1))
    }

    @Test func exitOfAnIdleWorkerForgetsIt() {
        var machine = Machine(maxWorkers: 2)
        let (worker, generation) = Self.idleWorker(&machine, waiter: 1)
        #expect(machine.workerExited(worker) == .none)
        #expect(machine.idleCount == 0)
        #expect(machine.liveCount == 0)
        #expect(machine.idleTimerFired(worker, generation: generation) == .none)
        #expect(machine.acquire(2) == .startWorker(worker + 1))
    }

    // MARK: Cancel

    @Test func cancelRemovesAWaiter() {
        var machine = Machine(maxWorkers: 1)
        #expect(machine.acquire(1) == .startWorker(1))
        #expect(machine.acquire(2) == .wait)
        #expect(machine.acquire(3) == .wait)
        let first = machine.cancel(2)
        let again = machine.cancel(2)
        let unknown = machine.cancel(99)
        #expect(first)
        #expect(!again)
        #expect(!unknown)
        #expect(Array(machine.waiters) == [1, 3])
        #expect(machine.workerReady(1) == .handOver(worker: 1, waiter: 1))
        #expect(machine.release(1) == .handOver(worker: 1, waiter: 3))
    }

    // MARK: Shutdown

    @Test func shutdownStopsIdleWorkers() {
        var machine = Machine(maxWorkers: 3)
        let workers = (1...3).map { Self.busyWorker(&machine, waiter: $0) }
        for worker in workers[0..<2] { _ = machine.release(worker) }
        #expect(machine.idleCount == 2)
        let (stop, failed) = machine.shutdown()
        #expect(Set(stop) == Set(workers[0..<2]))
        #expect(failed.isEmpty)
        #expect(machine.idleCount == 0)
        #expect(machine.isShuttingDown)
        for worker in workers[0..<2] { #expect(machine.workers[worker] == .draining) }
        // The busy worker stops once its call ends.
        #expect(machine.release(workers[2]) == .stopWorker(workers[2]))
        #expect(machine.workers[workers[2]] == .draining)
    }

    @Test func shutdownFailsWaitersAndStopsWorkersThatFinishLater() {
        var machine = Machine(maxWorkers: 2)
        let busy = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.acquire(2) == .startWorker(busy + 1))
        #expect(machine.acquire(3) == .wait)
        let (stop, failed) = machine.shutdown()
        #expect(stop.isEmpty)
        #expect(failed == [2, 3])
        #expect(machine.waiters.isEmpty)
        #expect(machine.workerReady(busy + 1) == .stopWorker(busy + 1))
        #expect(machine.release(busy) == .stopWorker(busy))
        #expect(machine.busyCount == 0)
        #expect(machine.startingCount == 0)
        #expect(machine.liveCount == 2)
        #expect(machine.workerExited(busy) == .none)
        #expect(machine.workerExited(busy + 1) == .none)
        #expect(machine.liveCount == 0)
    }

    @Test func exitsDuringShutdownNeitherFailNorReplace() {
        var machine = Machine(maxWorkers: 1)
        #expect(machine.acquire(1) == .startWorker(1))
        _ = machine.shutdown()
        #expect(machine.workerExited(1) == .none)
        #expect(machine.liveCount == 0)
    }

    @Test func acquireAfterShutdownIsRejected() {
        var machine = Machine(maxWorkers: 2)
        _ = machine.shutdown()
        #expect(machine.acquire(1) == .reject(.shuttingDown))
        #expect(machine.waiters.isEmpty)
        #expect(machine.liveCount == 0)
    }

    // MARK: Queue bound, minimum, pre-warm, reclaim and yield

    @Test func aFullQueueRejectsWithTheFunctionsOwnCapWhenAtMaxWorkers() {
        var machine = Machine(maxWorkers: 1, maxQueued: 1)
        #expect(machine.acquire(1) == .startWorker(1))
        // Call 1 waits for its spawning worker: it does not count against the bound; call 2 does.
        #expect(machine.acquire(2) == .wait)
        #expect(machine.waitingForCapacity == 1)
        #expect(machine.acquire(3) == .reject(.functionAtCapacity))
        #expect(Array(machine.waiters) == [1, 2])
        #expect(machine.workerReady(1) == .handOver(worker: 1, waiter: 1))
        #expect(machine.acquire(4) == .reject(.functionAtCapacity))
        #expect(machine.release(1) == .handOver(worker: 1, waiter: 2))
        #expect(machine.acquire(5) == .wait)
    }

    @Test func aFullQueueWhileWorkersWaitForRoomIsTheHostsCapacity() {
        var machine = Machine(maxWorkers: 4, maxQueued: 1)
        #expect(machine.acquire(1) == .startWorker(1))
        machine.waitingForRoom(1)
        #expect(machine.spawningCount == 0)
        #expect(machine.acquire(2) == .reject(.hostAtCapacity))
        let granted = machine.roomGranted(1)
        #expect(granted)
        let again = machine.roomGranted(1)
        #expect(!again)
        #expect(machine.acquire(3) == .startWorker(2))
    }

    @Test func aQueueBoundOfZeroStillLetsACallStartAWorker() {
        var machine = Machine(maxWorkers: 2, maxQueued: 0)
        #expect(machine.acquire(1) == .startWorker(1))
        machine.waitingForRoom(1)
        #expect(machine.acquire(2) == .reject(.hostAtCapacity))
        #expect(machine.workerExited(1) == .failWaiter(1, thenStart: nil))
        #expect(machine.awaitingRoom.isEmpty)
    }

    @Test func warmUpStartsMinInstancesOrOneForPrewarm() {
        var none = Machine(maxWorkers: 4)
        #expect(none.warmUp(prewarm: false).isEmpty)
        var prewarmed = Machine(maxWorkers: 4)
        #expect(prewarmed.warmUp(prewarm: true) == [1])
        #expect(prewarmed.warmUp(prewarm: true).isEmpty, "already warm")
        var minimum = Machine(maxWorkers: 4, minInstances: 3)
        #expect(minimum.warmUp(prewarm: true) == [1, 2, 3])
        #expect(minimum.startingCount == 3)
        #expect(minimum.waiters.isEmpty)
        guard case .startIdleTimer(1, _) = minimum.workerReady(1) else {
            Issue.record("a pre-warmed worker goes idle")
            return
        }
        #expect(minimum.acquire(10) == .use(1))
    }

    @Test func idleTimersKeepMinInstancesWarm() {
        var machine = Machine(maxWorkers: 3, minInstances: 1)
        let workers = (1...2).map { Self.busyWorker(&machine, waiter: $0) }
        var generations: [Int] = []
        for worker in workers {
            guard case .startIdleTimer(worker, let generation) = machine.release(worker) else {
                Issue.record("expected worker \(worker) to go idle")
                return
            }
            generations.append(generation)
        }
        #expect(machine.idleTimerFired(workers[0], generation: generations[0]) == .stopWorker(workers[0]))
        // The last one is the minimum: its timer does not stop it.
        #expect(machine.idleTimerFired(workers[1], generation: generations[1]) == .none)
        #expect(machine.workers[workers[1]] == .ready(generation: generations[1]))
        #expect(machine.workerExited(workers[0]) == .none)
        #expect(machine.acquire(3) == .use(workers[1]))
    }

    @Test func aPoolBelowItsMinimumStartsAWarmWorkerButDoesNotRetryFailedStarts() {
        var machine = Machine(maxWorkers: 2, minInstances: 1)
        #expect(machine.warmUp(prewarm: false) == [1])
        // The start fails: nobody waits, and it is not retried (a broken function would start forever).
        #expect(machine.workerExited(1) == .none)
        #expect(machine.liveCount == 0)
        // A worker that was ready and crashed is replaced to keep the minimum.
        let worker = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.workerExited(worker) == .keepWarm(worker + 1))
        #expect(machine.startingCount == 1)
    }

    @Test func reclaimStopsOnlyReadyWorkers() {
        var machine = Machine(maxWorkers: 2, minInstances: 1)
        let busy = Self.busyWorker(&machine, waiter: 1)
        let (idle, _) = Self.idleWorker(&machine, waiter: 2)
        #expect(machine.reclaim(busy) == .none)
        #expect(machine.reclaim(idle) == .stopWorker(idle))
        #expect(machine.workers[idle] == .draining)
        #expect(machine.idleCount == 0)
        #expect(machine.reclaim(idle) == .none)
        #expect(machine.acquire(3) == .wait)
    }

    @Test func aYieldingWorkerStopsAndItsCallersGetAReplacementAfterItExits() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.acquire(2) == .wait)
        #expect(machine.release(worker, yield: true) == .stopWorker(worker))
        #expect(machine.workers[worker] == .draining)
        #expect(Array(machine.waiters) == [2])
        #expect(machine.workerExited(worker) == .startWorker(worker + 1))
    }

    @Test func anUnneededStartCanBeAbandonedBeforeItLaunches() {
        var machine = Machine(maxWorkers: 2)
        #expect(machine.acquire(1) == .startWorker(1))
        let needed = machine.abandonStart(1)
        #expect(!needed, "a waiting call needs it")
        let cancelled = machine.cancel(1)
        #expect(cancelled)
        let abandoned = machine.abandonStart(1)
        #expect(abandoned)
        #expect(machine.liveCount == 0)
        #expect(machine.workerReady(1) == .none)
        #expect(machine.workerExited(1) == .none)
    }

    // MARK: Randomized sequences

    @Test(arguments: [(1, 0, Int.max), (2, 0, 3), (3, 1, Int.max), (8, 2, 5), (4, 4, 1)])
    func countsStayConsistentThroughRandomEvents(maxWorkers: Int, minInstances: Int, maxQueued: Int) throws {
        for seed in UInt64(1)...40 {
            try Self.runRandomEvents(
                maxWorkers: maxWorkers, minInstances: minInstances, maxQueued: maxQueued, seed: seed &* 0x9E37_79B9,
                steps: 400)
        }
    }

    /// Plays a random but legal sequence of events, as `FunctionPool` would deliver them, and checks the
    /// machine's invariants after each one against a model of who holds which worker.
    private static func runRandomEvents(
        maxWorkers: Int, minInstances: Int, maxQueued: Int, seed: UInt64, steps: Int
    ) throws {
        var random = SplitMix64(seed: seed)
        var machine = Machine(maxWorkers: maxWorkers, minInstances: minInstances, maxQueued: maxQueued)
        var nextWaiter = 1
        var queued: [Int] = []
        /// Worker → the call it serves.
        var held: [Int: Int] = [:]
        var everStarted: Set<Int> = []
        var idleGenerations: [Int: [Int]] = [:]
        let context = "maxWorkers \(maxWorkers), min \(minInstances), queue \(maxQueued), seed \(seed)"

        func workers(in state: (Machine.WorkerState) -> Bool) -> [Int] {
            machine.workers.filter { state($0.value) }.map(\.key).sorted()
        }

        func apply(_ action: Machine.Action, from event: String) {
            switch action {
            case .none:
                break
            case .handOver(let worker, let waiter):
                #expect(held[worker] == nil, "\(event): worker \(worker) handed twice (\(context))")
                #expect(queued.first == waiter, "\(event): handed to \(waiter), not the oldest waiter (\(context))")
                queued.removeAll { $0 == waiter }
                held[worker] = waiter
            case .startIdleTimer(let worker, let generation):
                #expect(
                    !idleGenerations.values.contains(where: { $0.contains(generation) }),
                    "generation reused (\(context))")
                idleGenerations[worker, default: []].append(generation)
            case .stopWorker(let worker):
                held[worker] = nil
            case .startWorker(let worker):
                #expect(everStarted.insert(worker).inserted, "\(event): worker id \(worker) reused (\(context))")
            case .keepWarm(let worker):
                #expect(everStarted.insert(worker).inserted, "\(event): worker id \(worker) reused (\(context))")
                #expect(machine.activeCount <= minInstances, "\(event): kept warm above the minimum (\(context))")
            case .failWaiter(let failed, let replacement):
                #expect(queued.first == failed, "\(event): failed \(failed), not the oldest waiter (\(context))")
                queued.removeAll { $0 == failed }
                if let replacement {
                    #expect(
                        everStarted.insert(replacement).inserted,
                        "\(event): worker id \(replacement) reused (\(context))")
                }
            }
        }

        for step in 0..<steps {
            let roll = random.next(upperBound: UInt64(100))
            var event = "step \(step)"
            switch roll {
            case 0..<30:
                let waiter = nextWaiter
                nextWaiter += 1
                event += ": acquire \(waiter)"
                let queueFull = machine.waitingForCapacity >= maxQueued && machine.idleCount == 0
                let ownCap = machine.liveCount - machine.awaitingRoom.count >= maxWorkers
                let hostFull = !machine.awaitingRoom.isEmpty
                let shuttingDown = machine.isShuttingDown
                let action = machine.acquire(waiter)
                let rejected = if case .reject = action { true } else { false }
                #expect(
                    rejected || !(queueFull && (ownCap || hostFull)), "\(event): a full queue took a call (\(context))")
                switch action {
                case .use(let worker):
                    #expect(held[worker] == nil, "\(event): idle worker \(worker) handed twice (\(context))")
                    #expect(queued.isEmpty, "\(event): an idle worker existed while calls waited (\(context))")
                    held[worker] = waiter
                case .startWorker(let worker):
                    #expect(everStarted.insert(worker).inserted, "\(event): worker id \(worker) reused (\(context))")
                    queued.append(waiter)
                case .wait:
                    queued.append(waiter)
                case .reject(.shuttingDown):
                    #expect(machine.isShuttingDown)
                case .reject(let reason):
                    #expect(!shuttingDown && queueFull, "\(event): rejected \(reason) below the bound (\(context))")
                    #expect(
                        reason == (ownCap ? .functionAtCapacity : .hostAtCapacity) && (ownCap || hostFull),
                        "\(event): \(reason) (\(context))")
                }
            case 30..<38:
                guard let waiter = queued.randomElement(using: &random) else { continue }
                event += ": cancel \(waiter)"
                let cancelled = machine.cancel(waiter)
                #expect(cancelled)
                queued.removeAll { $0 == waiter }
            case 38..<58:
                // Only spawned workers report ready; those waiting for room have no process yet.
                guard
                    let worker = workers(in: { $0 == .starting }).filter({ !machine.awaitingRoom.contains($0) })
                        .randomElement(using: &random)
                else { continue }
                event += ": ready \(worker)"
                apply(machine.workerReady(worker), from: event)
            case 58..<80:
                guard let worker = workers(in: { $0 == .busy }).randomElement(using: &random) else { continue }
                event += ": release \(worker)"
                held[worker] = nil
                apply(machine.release(worker), from: event)
            case 80..<84:
                guard let worker = workers(in: { $0 == .busy }).randomElement(using: &random) else { continue }
                held[worker] = nil
                if random.next(upperBound: UInt64(2)) == 0 {
                    event += ": retire \(worker)"
                    machine.retire(worker)
                } else {
                    event += ": release \(worker) yielding"
                    let action = machine.release(worker, yield: true)
                    #expect(action == .stopWorker(worker), "\(event) (\(context))")
                    apply(action, from: event)
                }
            case 84..<92:
                guard
                    let worker = workers(in: { if case .ready = $0 { true } else { false } }).randomElement(
                        using: &random),
                    let generation = idleGenerations[worker]?.randomElement(using: &random)
                else { continue }
                event += ": idle timer \(worker)/\(generation)"
                let current = machine.workers[worker] == .ready(generation: generation)
                let aboveMinimum = machine.activeCount > minInstances
                let action = machine.idleTimerFired(worker, generation: generation)
                #expect(action == (current && aboveMinimum ? .stopWorker(worker) : .none), "\(event) (\(context))")
                apply(action, from: event)
            case 92..<99:
                switch random.next(upperBound: UInt64(10)) {
                case 0..<4:
                    guard let worker = machine.workers.keys.sorted().randomElement(using: &random) else { continue }
                    event += ": exit \(worker)"
                    held[worker] = nil
                    apply(machine.workerExited(worker), from: event)
                case 4, 5:
                    guard
                        let worker = workers(in: { if case .ready = $0 { true } else { false } }).randomElement(
                            using: &random)
                    else { continue }
                    event += ": reclaim \(worker)"
                    let action = machine.reclaim(worker)
                    #expect(action == .stopWorker(worker), "\(event) (\(context))")
                    apply(action, from: event)
                case 6:
                    guard let worker = workers(in: { $0 == .starting }).randomElement(using: &random) else { continue }
                    event += ": abandon start \(worker)"
                    let spare = machine.startingCount > queued.count
                    let abandoned = machine.abandonStart(worker)
                    #expect(abandoned == spare, "\(event) (\(context))")
                case 8:
                    guard
                        let worker = workers(in: { $0 == .starting }).filter({ !machine.awaitingRoom.contains($0) })
                            .randomElement(using: &random)
                    else { continue }
                    event += ": \(worker) waits for room"
                    machine.waitingForRoom(worker)
                case 9:
                    guard let worker = machine.awaitingRoom.sorted().randomElement(using: &random) else { continue }
                    event += ": room for \(worker)"
                    let granted = machine.roomGranted(worker)
                    #expect(granted, "\(event) (\(context))")
                default:
                    event += ": warm up"
                    for worker in machine.warmUp(prewarm: random.next(upperBound: UInt64(2)) == 0) {
                        #expect(
                            everStarted.insert(worker).inserted, "\(event): worker id \(worker) reused (\(context))")
                    }
                    #expect(
                        machine.isShuttingDown || machine.activeCount >= minInstances
                            || machine.liveCount == maxWorkers,
                        "\(event): still below the minimum (\(context))")
                }
            default:
                guard !machine.isShuttingDown, random.next(upperBound: UInt64(4)) == 0 else { continue }
                event += ": shutdown"
                let (stopped, failed) = machine.shutdown()
                #expect(failed == queued, "\(event) (\(context))")
                queued.removeAll()
                for worker in stopped {
                    #expect(held[worker] == nil, "\(event): stopped a worker in use (\(context))")
                }
            }

            try #require(
                maxQueued > Int.max - maxWorkers || queued.count <= maxQueued + maxWorkers,
                "\(event): queue over its bound (\(context))")
            try #require(
                machine.awaitingRoom.allSatisfy { machine.workers[$0] == .starting },
                "\(event): a worker waits for room but is not starting (\(context))")
            let stopping = machine.workers.values.count { $0 == .draining }
            let idleInMap = machine.workers.values.count { if case .ready = $0 { true } else { false } }
            let live = machine.liveCount
            let sum = machine.startingCount + machine.idleCount + machine.busyCount + stopping
            try #require(live == sum, "\(event): live \(live) ≠ starting+idle+busy+stopping \(sum) (\(context))")
            try #require(machine.idleCount == idleInMap, "\(event): idle stack out of step (\(context))")
            try #require(machine.busyCount <= maxWorkers, "\(event): busy over the maximum (\(context))")
            try #require(live <= maxWorkers, "\(event): live over the maximum (\(context))")
            try #require(
                Array(machine.waiters) == queued, "\(event): queue \(Array(machine.waiters)) ≠ \(queued) (\(context))")
            try #require(
                machine.idleCount == 0 || queued.isEmpty, "\(event): idle workers while calls wait (\(context))")
            try #require(
                Set(held.keys) == Set(workers(in: { $0 == .busy })),
                "\(event): held \(held.keys.sorted()) ≠ busy \(workers(in: { $0 == .busy })) (\(context))"
            )
            // Nobody waits without cover: a starting worker for each waiter, or the pool is full and a busy or
            // stopping worker will come back or make room.
            try #require(
                machine.isShuttingDown || queued.count <= machine.startingCount || live == maxWorkers,
                "\(event): \(queued.count) waiters, \(machine.startingCount) starting, \(live) live (\(context))"
            )
        }
    }
}
