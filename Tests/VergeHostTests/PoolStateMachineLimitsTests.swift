import Testing

@testable import VergeHost

/// The pool's bounds: never more than `maxWorkers` live, and a full queue rejects a call with the function's own cap
/// or, while workers wait for room on the host, the host's.
@Suite struct PoolStateMachineLimitsTests: PoolStateMachineFixtures {
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
}
