import Testing

@testable import VergeHost

/// What the `PoolStateMachine…Tests` suites share: the machine under test and ways to drive it to a state. A suite
/// adopts it to use `Machine`, `Self.busyWorker` and `Self.idleWorker`.
protocol PoolStateMachineFixtures {}

extension PoolStateMachineFixtures {
    typealias Machine = PoolStateMachine

    /// Drives a pool to one ready worker that is now busy with `waiter`.
    static func busyWorker(_ machine: inout Machine, waiter: Int) -> Int {
        guard case .startWorker(let worker) = machine.acquire(waiter) else {
            Issue.record("expected a worker to start")
            return -1
        }
        #expect(machine.workerReady(worker) == .handOver(worker: worker, waiter: waiter))
        return worker
    }

    /// Drives a pool to one idle worker and returns it with the generation of its idle timer.
    static func idleWorker(_ machine: inout Machine, waiter: Int) -> (worker: Int, generation: Int) {
        let worker = busyWorker(&machine, waiter: waiter)
        guard case .startIdleTimer(worker, let generation) = machine.release(worker) else {
            Issue.record("expected the worker to go idle")
            return (worker, -1)
        }
        return (worker, generation)
    }
}
