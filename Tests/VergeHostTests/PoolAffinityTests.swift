import Testing
import VergeCore

@testable import VergeHost

/// Calls and workers on the same event loop find each other (no thread hand-off on the call's path), without a call
/// ever waiting more than `affinityPatience` extra hand-overs for it.
@Suite struct PoolAffinityTests {
    typealias Machine = PoolStateMachine
    static let loopA: Machine.Affinity = 101
    static let loopB: Machine.Affinity = 202

    /// Starts a worker for `waiter` on `affinity`, makes it ready (serving `waiter`) and frees it: it is idle.
    static func idleWorker(_ machine: inout Machine, waiter: Int, on affinity: Machine.Affinity) -> Int {
        guard case .startWorker(let worker) = machine.acquire(waiter, affinity: affinity) else {
            Issue.record("expected a worker to start")
            return -1
        }
        #expect(machine.affinity(of: worker) == affinity, "a worker started for a call lives on its loop")
        #expect(machine.workerReady(worker) == .handOver(worker: worker, waiter: waiter))
        guard case .startIdleTimer = machine.release(worker) else {
            Issue.record("expected the worker to go idle")
            return worker
        }
        return worker
    }

    @Test func aCallTakesTheMostRecentIdleWorkerOfItsLoopElseTheMostRecentOne() {
        var machine = Machine(maxWorkers: 4)
        let a1 = Self.idleWorker(&machine, waiter: 1, on: Self.loopA)
        // While a1 is idle, new calls would take it: make three more workers by keeping the earlier ones busy.
        #expect(machine.acquire(2, affinity: Self.loopA) == .use(a1))
        guard case .startWorker(let b1) = machine.acquire(3, affinity: Self.loopB) else {
            Issue.record("expected a second worker")
            return
        }
        #expect(machine.workerReady(b1) == .handOver(worker: b1, waiter: 3))
        guard case .startIdleTimer = machine.release(a1), case .startIdleTimer = machine.release(b1) else {
            Issue.record("expected both workers to go idle")
            return
        }
        // Idle stack, most recent last: a1, b1. A call on loop A takes a1 although b1 is more recent.
        #expect(machine.acquire(4, affinity: Self.loopA) == .use(a1))
        // A call on a loop no worker lives on, or with no affinity, takes the most recent.
        #expect(machine.acquire(5, affinity: 303) == .use(b1))
        guard case .startIdleTimer = machine.release(a1), case .startIdleTimer = machine.release(b1) else {
            Issue.record("expected both workers to go idle")
            return
        }
        #expect(machine.acquire(6) == .use(b1))
    }

    @Test func aFreedWorkerPrefersAWaitingCallOfItsLoopWithinTheWindow() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.idleWorker(&machine, waiter: 1, on: Self.loopA)
        #expect(machine.acquire(2, affinity: Self.loopA) == .use(worker))
        // Queue: B, B, A. The worker lives on A: it serves the A call first.
        #expect(machine.acquire(10, affinity: Self.loopB) == .wait)
        #expect(machine.acquire(11, affinity: Self.loopB) == .wait)
        #expect(machine.acquire(12, affinity: Self.loopA) == .wait)
        #expect(machine.release(worker) == .handOver(worker: worker, waiter: 12))
        #expect(Array(machine.waiters) == [10, 11])
        #expect(machine.release(worker) == .handOver(worker: worker, waiter: 10))
        #expect(machine.release(worker) == .handOver(worker: worker, waiter: 11))
    }

    @Test func aCallBeyondTheWindowWaitsItsTurn() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.idleWorker(&machine, waiter: 1, on: Self.loopA)
        #expect(machine.acquire(2, affinity: Self.loopA) == .use(worker))
        let others = (10..<(10 + Machine.affinityWindow)).map { $0 }
        for id in others { #expect(machine.acquire(id, affinity: Self.loopB) == .wait) }
        #expect(machine.acquire(99, affinity: Self.loopA) == .wait)
        // The A call is past the oldest `affinityWindow` calls: the oldest goes first.
        #expect(machine.release(worker) == .handOver(worker: worker, waiter: 10))
    }

    @Test func theOldestWaitingCallIsPassedOverAtMostPatienceTimes() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.idleWorker(&machine, waiter: 1, on: Self.loopA)
        #expect(machine.acquire(2, affinity: Self.loopA) == .use(worker))
        #expect(machine.acquire(10, affinity: Self.loopB) == .wait)
        // A steady stream of loop-A calls behind the loop-B call: each release could serve one of them.
        var next = 20
        var served: [Int] = []
        for _ in 0..<(Machine.affinityPatience + 2) {
            #expect(machine.acquire(next, affinity: Self.loopA) == .wait)
            next += 1
            guard case .handOver(_, let waiter) = machine.release(worker) else {
                Issue.record("expected a hand-over")
                return
            }
            served.append(waiter)
            if waiter == 10 { break }
        }
        #expect(served.count == Machine.affinityPatience + 1, "served: \(served)")
        #expect(served.last == 10, "the oldest call waited more than \(Machine.affinityPatience) hand-overs: \(served)")
    }

    /// No waiting call — the oldest or one behind it — is passed over more than `affinityPatience` times: calls on
    /// two loops queue in random order behind one worker, calls keep arriving, and each call counts the later calls
    /// served before it.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func noWaitingCallIsPassedOverMoreThanPatienceTimes(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var machine = Machine(maxWorkers: 1)
        let worker = Self.idleWorker(&machine, waiter: 1, on: Self.loopB)
        #expect(machine.acquire(2, affinity: Self.loopB) == .use(worker))
        var arrival: [Int: Int] = [:]
        var waiting: Set<Int> = []
        var passes: [Int: Int] = [:]
        var next = 10
        for step in 0..<400 {
            // One or two new calls, on either loop, then the worker is freed and goes to one of them.
            for _ in 0..<Int.random(in: 1...2, using: &random) {
                let loop = Bool.random(using: &random) ? Self.loopA : Self.loopB
                #expect(machine.acquire(next, affinity: loop) == .wait)
                arrival[next] = step * 10 + next
                waiting.insert(next)
                next += 1
            }
            guard case .handOver(_, let served) = machine.release(worker) else {
                Issue.record("expected a hand-over")
                return
            }
            waiting.remove(served)
            for other in waiting where arrival[other]! < arrival[served]! { passes[other, default: 0] += 1 }
        }
        let worst = passes.values.max() ?? 0
        #expect(worst <= Machine.affinityPatience, "a call was passed over \(worst) times (seed \(seed))")
    }

    @Test func aCancelledOrFailedWaiterLeavesNoAffinityBehind() {
        var machine = Machine(maxWorkers: 1)
        let worker = Self.idleWorker(&machine, waiter: 1, on: Self.loopA)
        #expect(machine.acquire(2, affinity: Self.loopA) == .use(worker))
        #expect(machine.acquire(10, affinity: Self.loopB) == .wait)
        #expect(machine.acquire(11, affinity: Self.loopA) == .wait)
        let cancelled = machine.cancel(11)
        #expect(cancelled)
        #expect(machine.release(worker) == .handOver(worker: worker, waiter: 10))
        // Shutting down forgets every waiter and its affinity; the worker is stopped when it is freed.
        #expect(machine.acquire(12, affinity: Self.loopA) == .wait)
        let (_, failed) = machine.shutdown()
        #expect(failed == [12])
        #expect(machine.release(worker) == .stopWorker(worker))
    }
}
