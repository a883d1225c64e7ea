import Testing

@testable import VergeHost

/// Minimum instances and pre-warm: workers started up front, kept through their idle timers, and replaced when a
/// ready one crashes (a start that fails is not retried).
@Suite struct PoolStateMachineMinimumTests: PoolStateMachineFixtures {
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
}
