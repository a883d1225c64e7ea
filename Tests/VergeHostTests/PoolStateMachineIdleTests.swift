import Testing

@testable import VergeHost

/// Release, idle and scale to zero: a released worker goes to the next waiter or idles with a fresh timer
/// generation; the most recently used idle worker is taken first; only the current idle timer stops a worker;
/// reclaim stops idle workers only.
@Suite struct PoolStateMachineIdleTests: PoolStateMachineFixtures {
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
}
