import Synchronization

/// What host admission tells a pool, after it has released its own lock.
protocol AdmissionClient: AnyObject, Sendable {
    /// The queued request for `worker` got its slot: the worker may be spawned.
    func admissionGranted(worker: Int)
    /// Stop `worker` if it is still idle: its slot is needed by another function's waiting call.
    func admissionReclaims(worker: Int)
}

/// The host's capacity, shared by every pool: owns an `AdmissionStateMachine` under a lock and remembers which
/// pool's worker holds each slot. A pool calls it under the pool's own lock (the order is always pool, then
/// admission); what admission decides for other pools comes back as `Effects`, which the caller runs once it holds
/// no lock, so no lock is ever taken inside another the other way round.
final class HostAdmission: Sendable {
    let capacity: AdmissionStateMachine.Capacity
    private let state: Mutex<State>

    private struct State {
        var machine: AdmissionStateMachine
        var holders: [Int: Holder] = [:]
        var nextSlot = 1
    }

    private struct Holder {
        let client: any AdmissionClient
        let worker: Int
    }

    /// Calls into pools decided under the admission lock, to be run by the caller once it holds no lock.
    struct Effects: Sendable {
        fileprivate enum Kind { case grant, reclaim }
        fileprivate struct Item: Sendable {
            let kind: Kind
            let client: any AdmissionClient
            let worker: Int
        }
        fileprivate var items: [Item] = []

        var isEmpty: Bool { items.isEmpty }

        func run() {
            for item in items {
                switch item.kind {
                case .grant: item.client.admissionGranted(worker: item.worker)
                case .reclaim: item.client.admissionReclaims(worker: item.worker)
                }
            }
        }
    }

    init(capacity: AdmissionStateMachine.Capacity) {
        self.capacity = capacity
        self.state = Mutex(State(machine: AdmissionStateMachine(capacity: capacity)))
    }

    /// Counts for status reports and tests.
    struct Usage: Sendable, Equatable {
        var workers: Int
        var memoryMB: Int
        var queued: Int
    }

    var usage: Usage {
        state.withLock {
            Usage(workers: $0.machine.usedWorkers, memoryMB: $0.machine.usedMemoryMB, queued: $0.machine.queuedCount)
        }
    }

    /// Asks for a slot for `worker` of `client`. Returns the slot's id (the handle for every later call), the
    /// decision and what it means for other pools.
    func request(
        for client: any AdmissionClient, worker: Int, function: FunctionKey, memoryMB: Int, background: Bool
    ) -> (slot: Int, decision: AdmissionStateMachine.Decision, effects: Effects) {
        state.withLock { state in
            let slot = state.nextSlot
            state.nextSlot += 1
            let (decision, actions) = state.machine.request(
                slot, function: function, memoryMB: memoryMB, background: background)
            if case .refused = decision {
                return (slot, decision, Effects())
            }
            state.holders[slot] = Holder(client: client, worker: worker)
            return (slot, decision, Self.effects(actions, &state))
        }
    }

    /// Withdraws a queued request; `nil` when it was already granted (its grant is on its way).
    func cancel(_ slot: Int) -> Effects? {
        state.withLock { state in
            guard let actions = state.machine.cancel(slot) else { return nil }
            state.holders[slot] = nil
            return Self.effects(actions, &state)
        }
    }

    func idle(_ slot: Int) -> Effects {
        state.withLock { state in Self.effects(state.machine.idle(slot), &state) }
    }

    func use(_ slot: Int) -> Bool {
        state.withLock { $0.machine.use(slot) }
    }

    func yieldForOthers(_ slot: Int) -> Bool {
        state.withLock { $0.machine.yieldForOthers(slot) }
    }

    /// The slot's worker has exited, or never started.
    func release(_ slot: Int) -> Effects {
        state.withLock { state in
            state.holders[slot] = nil
            return Self.effects(state.machine.release(slot), &state)
        }
    }

    private static func effects(_ actions: [AdmissionStateMachine.Action], _ state: inout State) -> Effects {
        var effects = Effects()
        for action in actions {
            switch action {
            case .grant(let slot):
                if let holder = state.holders[slot] {
                    effects.items.append(.init(kind: .grant, client: holder.client, worker: holder.worker))
                }
            case .reclaim(let slot):
                if let holder = state.holders[slot] {
                    effects.items.append(.init(kind: .reclaim, client: holder.client, worker: holder.worker))
                }
            }
        }
        return effects
    }
}
