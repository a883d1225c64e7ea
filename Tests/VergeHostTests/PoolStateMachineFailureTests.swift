import Testing

@testable import VergeHost

/// Worker exits and replacement: a worker that dies starting fails only the calls no other worker covers; a busy,
/// retired, yielding or idle worker that exits is forgotten, and replaced while calls wait.
@Suite struct PoolStateMachineFailureTests: PoolStateMachineFixtures {
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

    @Test func aYieldingWorkerStopsAndItsCallersGetAReplacementAfterItExits() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.busyWorker(&machine, waiter: 1)
        #expect(machine.acquire(2) == .wait)
        #expect(machine.release(worker, yield: true) == .stopWorker(worker))
        #expect(machine.workers[worker] == .draining)
        #expect(Array(machine.waiters) == [2])
        #expect(machine.workerExited(worker) == .startWorker(worker + 1))
    }
}
