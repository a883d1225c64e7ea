import Testing

@testable import VergeHost

/// Shutdown: idle workers stop at once and busy ones when their call ends, waiters fail, later exits neither fail
/// nor replace anything, and new calls are rejected.
@Suite struct PoolStateMachineShutdownTests: PoolStateMachineFixtures {
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
}
