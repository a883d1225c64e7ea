import Testing

@testable import VergeHost

/// Acquiring a worker: an empty pool starts one and the call waits; waiters are served oldest first; concurrent
/// calls start more workers while the maximum allows and the starting ones do not already cover them; a waiter can
/// cancel, which can leave a start nobody needs.
@Suite struct PoolStateMachineAcquireTests: PoolStateMachineFixtures {
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
}
