import DequeModule

/// Host-wide admission, with no processes, sockets or clocks: the host's capacity — a number of worker processes
/// and megabytes of memory — is shared by the pools of every function. `HostAdmission` owns it under a lock.
///
/// Every worker process holds a **slot** (one worker, its function's `memory_mb`) from before it is spawned until
/// it has exited, so the sum over slots never exceeds the capacity. A pool that wants a new worker asks for a slot:
/// it is granted at once when it fits and nobody is waiting, otherwise the request queues. Queues are per function
/// and served in turns (round robin, one grant per function per turn), so a function with many waiting calls
/// cannot starve one with few: once a request is at the head of its function's queue, every other function gets at
/// most one grant before it. A head that does not fit blocks the turn (it is never overtaken by smaller requests).
/// Idle workers, oldest first, are reclaimed to make room for the waiting requests. A busy worker whose pool has its own calls waiting
/// gives its slot up (`yieldForOthers`) when another function is waiting and holds fewer slots.
struct AdmissionStateMachine {
    typealias SlotID = Int

    struct Capacity: Equatable, Sendable {
        var workers: Int
        var memoryMB: Int
    }

    enum SlotState: Equatable {
        /// Its worker is starting or serving a call: not reclaimable.
        case busy
        /// Its worker is idle; `since` orders idle slots, oldest first.
        case idle(since: Int)
        /// Its worker is being stopped; the slot frees when the process has exited.
        case draining
    }

    struct Slot: Equatable {
        let function: FunctionKey
        let memoryMB: Int
        var state: SlotState
    }

    struct Request: Equatable {
        let id: SlotID
        let function: FunctionKey
        let memoryMB: Int
    }

    enum Refusal: Equatable {
        /// The function needs more memory than the whole host has.
        case exceedsCapacity
        /// A background request (keeping a minimum warm) that does not fit now; background requests never wait
        /// or push other functions' workers out.
        case noRoom
    }

    enum Decision: Equatable {
        case granted
        case queued
        case refused(Refusal)
    }

    enum Action: Equatable {
        /// A queued request got its slot: its pool may spawn the worker.
        case grant(SlotID)
        /// Stop this idle worker to make room for a waiting request.
        case reclaim(SlotID)
    }

    let capacity: Capacity
    private(set) var slots: [SlotID: Slot] = [:]
    private var queues: [FunctionKey: Deque<Request>] = [:]
    /// Functions with queued requests, in the order they get their next grant.
    private(set) var turns: Deque<FunctionKey> = []
    private var idleClock = 0

    init(capacity: Capacity) {
        precondition(capacity.workers >= 1 && capacity.memoryMB >= 1)
        self.capacity = capacity
    }

    var usedWorkers: Int { slots.count }
    var usedMemoryMB: Int { slots.values.reduce(0) { $0 + $1.memoryMB } }
    var queuedCount: Int { queues.values.reduce(0) { $0 + $1.count } }

    /// The queued requests of `function`, oldest first.
    func queue(of function: FunctionKey) -> [SlotID] { queues[function].map { $0.map(\.id) } ?? [] }

    /// The request whose turn it is, if any.
    var head: Request? { turns.first.flatMap { queues[$0]?.first } }

    /// Slots of `function` that are not draining.
    func held(by function: FunctionKey) -> Int {
        slots.values.count { $0.function == function && $0.state != .draining }
    }

    private func fits(_ memoryMB: Int) -> Bool {
        usedWorkers + 1 <= capacity.workers && usedMemoryMB + memoryMB <= capacity.memoryMB
    }

    // MARK: Events

    /// A pool asks for a slot for a new worker. `background` requests (no call waits for them) are granted only if
    /// they fit now, without waiting and without reclaiming anything.
    mutating func request(
        _ id: SlotID, function: FunctionKey, memoryMB: Int, background: Bool = false
    ) -> (Decision, [Action]) {
        precondition(slots[id] == nil)
        if memoryMB > capacity.memoryMB { return (.refused(.exceedsCapacity), []) }
        if turns.isEmpty, fits(memoryMB) {
            slots[id] = Slot(function: function, memoryMB: memoryMB, state: .busy)
            return (.granted, [])
        }
        if background { return (.refused(.noRoom), []) }
        if queues[function] == nil {
            queues[function] = []
            turns.append(function)
        }
        queues[function]!.append(Request(id: id, function: function, memoryMB: memoryMB))
        return (.queued, dispatch())
    }

    /// A queued request is withdrawn (its calls gave up). Returns `nil` if it was not queued (already granted).
    mutating func cancel(_ id: SlotID) -> [Action]? {
        guard let function = queues.first(where: { $0.value.contains { $0.id == id } })?.key else { return nil }
        queues[function]!.removeAll { $0.id == id }
        if queues[function]!.isEmpty {
            queues[function] = nil
            turns.removeAll { $0 == function }
        }
        return dispatch()
    }

    /// The slot's worker is idle: it may be reclaimed for a waiting request.
    mutating func idle(_ id: SlotID) -> [Action] {
        guard slots[id]?.state == .busy else { return [] }
        idleClock += 1
        slots[id]!.state = .idle(since: idleClock)
        return dispatch()
    }

    /// The pool wants to give the slot's idle worker a call. Refused when the slot is being reclaimed.
    mutating func use(_ id: SlotID) -> Bool {
        switch slots[id]?.state {
        case .idle?, .busy?:
            slots[id]!.state = .busy
            return true
        case .draining?, nil:
            return false
        }
    }

    /// The slot's worker finished a call and its pool has more calls waiting. Returns `true` — and the slot starts
    /// draining — when another function waits for room and holds fewer slots: the worker must stop instead of
    /// taking its own pool's next call, so its slot goes to the other function.
    mutating func yieldForOthers(_ id: SlotID) -> Bool {
        guard let slot = slots[id], slot.state == .busy else { return false }
        let mine = held(by: slot.function)
        guard turns.contains(where: { $0 != slot.function && held(by: $0) < mine }) else { return false }
        slots[id]!.state = .draining
        return true
    }

    /// The slot's worker has exited (or its start failed, or was given up): the slot is free.
    mutating func release(_ id: SlotID) -> [Action] {
        guard slots.removeValue(forKey: id) != nil else { return [] }
        return dispatch()
    }

    // MARK: Granting and reclaiming

    /// Grants queued requests in turn while the one whose turn it is fits; then reclaims idle workers (oldest first)
    /// until the waiting requests, in the order they will be granted, fit once the draining workers are gone — as
    /// many of them as reclaiming can make room for.
    private mutating func dispatch() -> [Action] {
        var actions: [Action] = []
        while let function = turns.first, let request = queues[function]?.first, fits(request.memoryMB) {
            queues[function]!.removeFirst()
            turns.removeFirst()
            if queues[function]!.isEmpty {
                queues[function] = nil
            } else {
                turns.append(function)
            }
            slots[request.id] = Slot(function: request.function, memoryMB: request.memoryMB, state: .busy)
            actions.append(.grant(request.id))
        }
        guard !turns.isEmpty else { return actions }
        let draining = slots.values.filter { $0.state == .draining }
        var freeWorkers = capacity.workers - usedWorkers + draining.count
        var freeMemory = capacity.memoryMB - usedMemoryMB + draining.reduce(0) { $0 + $1.memoryMB }
        var idle = slots.compactMap { id, slot -> (SlotID, Int)? in
            if case .idle(let since) = slot.state { return (id, since) }
            return nil
        }.sorted { $0.1 < $1.1 }.map(\.0)[...]
        for request in grantOrder() {
            while freeWorkers < 1 || freeMemory < request.memoryMB, let id = idle.popFirst() {
                slots[id]!.state = .draining
                freeWorkers += 1
                freeMemory += slots[id]!.memoryMB
                actions.append(.reclaim(id))
            }
            guard freeWorkers >= 1, freeMemory >= request.memoryMB else { break }
            freeWorkers -= 1
            freeMemory -= request.memoryMB
        }
        return actions
    }

    /// The queued requests in the order they will be granted: one per function per turn.
    private func grantOrder() -> [Request] {
        var order: [Request] = []
        var turns = self.turns
        var queues = self.queues
        while let function = turns.popFirst() {
            order.append(queues[function]!.removeFirst())
            if !queues[function]!.isEmpty { turns.append(function) }
        }
        return order
    }
}
