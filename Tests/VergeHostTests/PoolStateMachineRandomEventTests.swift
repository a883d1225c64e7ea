import Testing
import VergeCore

@testable import VergeHost

/// The machine's invariants through seeded random but legal sequences of events, checked after every event against a
/// model of who holds which worker.
@Suite struct PoolStateMachineRandomEventTests: PoolStateMachineFixtures {
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
