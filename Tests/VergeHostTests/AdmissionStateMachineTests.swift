import Testing
import VergeCore

@testable import VergeHost

@Suite struct AdmissionStateMachineTests {
    typealias Machine = AdmissionStateMachine

    static let a = FunctionKey(tenant: "t", name: "a")
    static let b = FunctionKey(tenant: "t", name: "b")
    static let c = FunctionKey(tenant: "t", name: "c")

    static func machine(workers: Int, memoryMB: Int = 100_000) -> Machine {
        Machine(capacity: .init(workers: workers, memoryMB: memoryMB))
    }

    // MARK: Granting and queueing

    @Test func requestsAreGrantedWhileTheyFitThenQueue() {
        var machine = Self.machine(workers: 2)
        #expect(machine.request(1, function: Self.a, memoryMB: 128) == (.granted, []))
        #expect(machine.request(2, function: Self.b, memoryMB: 128) == (.granted, []))
        #expect(machine.request(3, function: Self.a, memoryMB: 128) == (.queued, []))
        #expect(machine.usedWorkers == 2)
        #expect(machine.queue(of: Self.a) == [3])
        #expect(machine.release(1) == [.grant(3)])
        #expect(machine.usedWorkers == 2)
        #expect(machine.queuedCount == 0)
    }

    @Test func memoryIsACapacityOfItsOwn() {
        var machine = Self.machine(workers: 10, memoryMB: 512)
        #expect(machine.request(1, function: Self.a, memoryMB: 256) == (.granted, []))
        #expect(machine.request(2, function: Self.a, memoryMB: 256) == (.granted, []))
        #expect(machine.request(3, function: Self.b, memoryMB: 16) == (.queued, []))
        #expect(machine.usedMemoryMB == 512)
        #expect(machine.release(2) == [.grant(3)])
        #expect(machine.usedMemoryMB == 272)
    }

    @Test func aFunctionLargerThanTheHostIsRefused() {
        var machine = Self.machine(workers: 4, memoryMB: 1024)
        #expect(machine.request(1, function: Self.a, memoryMB: 2048) == (.refused(.exceedsCapacity), []))
        #expect(machine.usedWorkers == 0)
        #expect(machine.queuedCount == 0)
    }

    @Test func backgroundRequestsNeverWaitNorPushOthersOut() {
        var machine = Self.machine(workers: 2)
        #expect(machine.request(1, function: Self.a, memoryMB: 128, background: true) == (.granted, []))
        #expect(machine.idle(1) == [])
        #expect(machine.request(2, function: Self.b, memoryMB: 128) == (.granted, []))
        // Full: a background request is refused and reclaims nothing, although slot 1 is idle.
        #expect(machine.request(3, function: Self.c, memoryMB: 128, background: true) == (.refused(.noRoom), []))
        #expect(machine.slots[1]?.state == .idle(since: 1))
        // Nor does it overtake a queued request when room appears.
        #expect(machine.request(4, function: Self.c, memoryMB: 128).0 == .queued)
        #expect(machine.request(5, function: Self.b, memoryMB: 128, background: true) == (.refused(.noRoom), []))
    }

    @Test func aNewRequestQueuesBehindWaitingOnesEvenWhenItWouldFit() {
        var machine = Self.machine(workers: 4, memoryMB: 1000)
        #expect(machine.request(1, function: Self.a, memoryMB: 600).0 == .granted)
        #expect(machine.request(2, function: Self.b, memoryMB: 600).0 == .queued)
        // 100 MB would fit, but b waits first: no overtaking, so large requests are not starved.
        #expect(machine.request(3, function: Self.c, memoryMB: 100).0 == .queued)
        #expect(machine.release(1) == [.grant(2), .grant(3)])
    }

    @Test func functionsTakeTurnsForFreedSlots() {
        var machine = Self.machine(workers: 2)
        #expect(machine.request(1, function: Self.a, memoryMB: 1).0 == .granted)
        #expect(machine.request(2, function: Self.a, memoryMB: 1).0 == .granted)
        // a floods; b and c ask once each, later.
        for id in 10..<15 { #expect(machine.request(id, function: Self.a, memoryMB: 1).0 == .queued) }
        #expect(machine.request(20, function: Self.b, memoryMB: 1).0 == .queued)
        #expect(machine.request(30, function: Self.c, memoryMB: 1).0 == .queued)
        #expect(Array(machine.turns) == [Self.a, Self.b, Self.c])
        #expect(machine.release(1) == [.grant(10)])
        #expect(machine.release(2) == [.grant(20)])
        #expect(machine.release(10) == [.grant(30)])
        #expect(machine.release(20) == [.grant(11)])
        #expect(Array(machine.turns) == [Self.a])
    }

    @Test func cancellingTheBlockingHeadLetsTheNextOneIn() {
        var machine = Self.machine(workers: 4, memoryMB: 1000)
        #expect(machine.request(1, function: Self.a, memoryMB: 500).0 == .granted)
        #expect(machine.request(2, function: Self.b, memoryMB: 900).0 == .queued)
        #expect(machine.request(3, function: Self.c, memoryMB: 200).0 == .queued)
        #expect(machine.cancel(2) == [.grant(3)])
        #expect(machine.cancel(2) == nil, "not queued any more")
        #expect(machine.cancel(3) == nil, "already granted")
        #expect(machine.queuedCount == 0)
    }

    // MARK: Reclaiming idle workers

    @Test func idleWorkersOfOtherFunctionsAreReclaimedOldestFirstAndOnlyAsNeeded() {
        var machine = Self.machine(workers: 3)
        for id in 1...3 { #expect(machine.request(id, function: Self.a, memoryMB: 1).0 == .granted) }
        #expect(machine.idle(2) == [])
        #expect(machine.idle(1) == [])
        #expect(machine.idle(3) == [])
        // b has no worker and a call waits: the oldest idle worker of a is stopped, one is enough.
        #expect(machine.request(10, function: Self.b, memoryMB: 1) == (.queued, [.reclaim(2)]))
        #expect(machine.slots[2]?.state == .draining)
        #expect(machine.use(2) == false, "a reclaimed worker takes no call")
        #expect(machine.use(1) == true)
        // Another request counts the draining slot as room to come and reclaims the next idle one.
        #expect(machine.request(11, function: Self.b, memoryMB: 1) == (.queued, [.reclaim(3)]))
        #expect(machine.release(2) == [.grant(10)])
        #expect(machine.release(3) == [.grant(11)])
    }

    @Test func aWorkerGoingIdleWhileARequestWaitsIsReclaimedAtOnce() {
        var machine = Self.machine(workers: 1)
        #expect(machine.request(1, function: Self.a, memoryMB: 1).0 == .granted)
        #expect(machine.request(2, function: Self.b, memoryMB: 1) == (.queued, []))
        #expect(machine.idle(1) == [.reclaim(1)])
        #expect(machine.release(1) == [.grant(2)])
    }

    @Test func memoryIsReclaimedUntilTheHeadFits() {
        var machine = Self.machine(workers: 10, memoryMB: 1000)
        for id in 1...4 { #expect(machine.request(id, function: Self.a, memoryMB: 250).0 == .granted) }
        for id in 1...4 { #expect(machine.idle(id) == []) }
        #expect(
            machine.request(9, function: Self.b, memoryMB: 600) == (.queued, [.reclaim(1), .reclaim(2), .reclaim(3)]))
        #expect(machine.release(1) == [])
        #expect(machine.release(2) == [])
        #expect(machine.release(3) == [.grant(9)])
    }

    // MARK: Yielding for fairness

    @Test func aBusyWorkerYieldsToAFunctionHoldingFewerSlots() {
        var machine = Self.machine(workers: 2)
        #expect(machine.request(1, function: Self.a, memoryMB: 1).0 == .granted)
        #expect(machine.request(2, function: Self.a, memoryMB: 1).0 == .granted)
        #expect(machine.yieldForOthers(1) == false, "nobody else waits")
        #expect(machine.request(3, function: Self.b, memoryMB: 1).0 == .queued)
        #expect(machine.yieldForOthers(1) == true)
        #expect(machine.slots[1]?.state == .draining)
        #expect(machine.release(1) == [.grant(3)])
        // Now a and b hold one each: a keeps its worker although b asks for more.
        #expect(machine.request(4, function: Self.b, memoryMB: 1).0 == .queued)
        #expect(machine.yieldForOthers(2) == false)
    }

    @Test func onlyBusySlotsYield() {
        var machine = Self.machine(workers: 1)
        #expect(machine.request(1, function: Self.a, memoryMB: 1).0 == .granted)
        #expect(machine.request(2, function: Self.b, memoryMB: 1).0 == .queued)
        #expect(machine.yieldForOthers(99) == false)
        #expect(machine.idle(1) == [.reclaim(1)])
        #expect(machine.yieldForOthers(1) == false)
    }

    // MARK: Randomized sequences

    @Test(arguments: [(1, 400), (2, 600), (3, 1000), (6, 2048), (4, 100_000)])
    func capacityFairnessAndProgressHoldThroughRandomEvents(workers: Int, memoryMB: Int) throws {
        for seed in UInt64(1)...40 {
            try Self.runRandomEvents(
                capacity: .init(workers: workers, memoryMB: memoryMB), seed: seed &* 0x5851_F42D, steps: 500)
        }
    }

    /// Plays a random but legal sequence of events, as the pools would deliver them, and checks after each one:
    /// never more workers or memory than the capacity; a request is granted only at the head of its function's
    /// queue; once a request is at the head, other functions get at most one grant each before it; no idle worker
    /// is left while the head waits for room it could give; and at the end, with every worker finishing, every
    /// queued request is granted.
    private static func runRandomEvents(capacity: Machine.Capacity, seed: UInt64, steps: Int) throws {
        var random = SplitMix64(seed: seed)
        var machine = Machine(capacity: capacity)
        let functions = [Self.a, Self.b, Self.c, FunctionKey(tenant: "u", name: "a")]
        let memory = [Self.a: 100, Self.b: 200, Self.c: 300, functions[3]: 150]
        var nextID = 1
        /// Requests still queued, per function, oldest first.
        var queued: [FunctionKey: [Int]] = [:]
        /// Grants to other functions since each request reached the head of its function's queue.
        var overtaken: [Int: Int] = [:]
        let context = "capacity \(capacity), seed \(seed)"

        func slots(_ predicate: (Machine.SlotState) -> Bool) -> [Int] {
            machine.slots.filter { predicate($0.value.state) }.map(\.key).sorted()
        }
        func isIdle(_ state: Machine.SlotState) -> Bool {
            if case .idle = state { return true }
            return false
        }
        func markHeads() {
            for ids in queued.values { if let head = ids.first, overtaken[head] == nil { overtaken[head] = 0 } }
        }
        func apply(_ actions: [Machine.Action], from event: String) throws {
            for action in actions {
                switch action {
                case .grant(let id):
                    let function = try #require(
                        queued.first { $0.value.contains(id) }?.key,
                        "\(event): granted \(id), never queued (\(context))")
                    #expect(queued[function]!.first == id, "\(event): granted \(id) out of order (\(context))")
                    queued[function]!.removeAll { $0 == id }
                    if queued[function]!.isEmpty { queued[function] = nil }
                    overtaken[id] = nil
                    for (other, ids) in queued where other != function {
                        if let head = ids.first, let count = overtaken[head] { overtaken[head] = count + 1 }
                    }
                    #expect(machine.slots[id]?.state == .busy, "\(event) (\(context))")
                case .reclaim(let id):
                    #expect(machine.slots[id]?.state == .draining, "\(event): reclaimed \(id) (\(context))")
                }
            }
            markHeads()
        }
        func check(_ event: String) throws {
            try #require(machine.usedWorkers <= capacity.workers, "\(event): over the workers capacity (\(context))")
            try #require(machine.usedMemoryMB <= capacity.memoryMB, "\(event): over the memory capacity (\(context))")
            try #require(
                machine.queuedCount == queued.values.reduce(0) { $0 + $1.count },
                "\(event): queue out of step (\(context))")
            for function in functions {
                try #require(machine.queue(of: function) == (queued[function] ?? []), "\(event) (\(context))")
            }
            for (id, count) in overtaken {
                try #require(
                    count <= functions.count - 1,
                    "\(event): request \(id) overtaken \(count) times (\(context))")
            }
            if let head = machine.head {
                let draining = machine.slots.values.filter { $0.state == .draining }
                let freeWorkers = capacity.workers - machine.usedWorkers + draining.count
                let freeMemory = capacity.memoryMB - machine.usedMemoryMB + draining.reduce(0) { $0 + $1.memoryMB }
                let fitsSoon = freeWorkers >= 1 && freeMemory >= head.memoryMB
                try #require(
                    fitsSoon || slots(isIdle).isEmpty,
                    "\(event): idle workers kept while request \(head.id) waits for room (\(context))")
                try #require(
                    !machine.slots.isEmpty, "\(event): request \(head.id) waits on an empty host (\(context))")
            }
        }

        for step in 0..<steps {
            var event = "step \(step)"
            switch random.next(upperBound: UInt64(100)) {
            case 0..<30:
                let function = functions.randomElement(using: &random)!
                let id = nextID
                nextID += 1
                let background = random.next(upperBound: UInt64(5)) == 0
                event += ": request \(id) for \(function)\(background ? " (background)" : "")"
                let nobodyWaits = queued.isEmpty
                let (decision, actions) = machine.request(
                    id, function: function, memoryMB: memory[function]!, background: background)
                switch decision {
                case .granted:
                    #expect(nobodyWaits, "\(event): granted past waiting requests (\(context))")
                    #expect(actions.isEmpty)
                case .queued:
                    #expect(!background, "\(event): a background request waits (\(context))")
                    queued[function, default: []].append(id)
                    markHeads()
                case .refused(.noRoom):
                    #expect(background, "\(event) (\(context))")
                    #expect(actions.isEmpty)
                case .refused(.exceedsCapacity):
                    #expect(memory[function]! > capacity.memoryMB, "\(event) (\(context))")
                }
                try apply(actions, from: event)
            case 30..<38:
                guard let id = queued.values.flatMap({ $0 }).randomElement(using: &random) else { continue }
                event += ": cancel \(id)"
                for function in queued.keys { queued[function]!.removeAll { $0 == id } }
                queued = queued.filter { !$0.value.isEmpty }
                overtaken[id] = nil
                let cancelled = machine.cancel(id)
                let actions = try #require(cancelled, "\(event): was queued (\(context))")
                markHeads()
                try apply(actions, from: event)
            case 38..<55:
                guard let id = slots({ $0 == .busy }).randomElement(using: &random) else { continue }
                event += ": idle \(id)"
                try apply(machine.idle(id), from: event)
            case 55..<65:
                guard let id = slots { isIdle($0) || $0 == .draining }.randomElement(using: &random) else { continue }
                event += ": use \(id)"
                let wasIdle = isIdle(machine.slots[id]!.state)
                let used = machine.use(id)
                #expect(used == wasIdle, "\(event) (\(context))")
            case 65..<75:
                guard let id = slots({ $0 == .busy }).randomElement(using: &random) else { continue }
                event += ": yield \(id)"
                let function = machine.slots[id]!.function
                let mine = machine.held(by: function)
                let expected = queued.keys.contains { $0 != function && machine.held(by: $0) < mine }
                let yielded = machine.yieldForOthers(id)
                #expect(yielded == expected, "\(event) (\(context))")
            default:
                // Exits: mostly of draining workers (reclaimed or yielded), sometimes a crash of any.
                let draining = slots { $0 == .draining }
                let pool = draining.isEmpty || random.next(upperBound: UInt64(4)) == 0 ? slots { _ in true } : draining
                guard let id = pool.randomElement(using: &random) else { continue }
                event += ": exit \(id)"
                try apply(machine.release(id), from: event)
            }
            try check(event)
        }

        // Every worker finishes its call and exits, one by one: every queued request must be granted.
        var rounds = 0
        while let id = machine.slots.keys.sorted().first, rounds < 10_000 {
            rounds += 1
            try apply(machine.release(id), from: "drain: exit \(id)")
            try check("drain")
        }
        try #require(queued.isEmpty, "requests never granted: \(queued) (\(context))")
        try #require(machine.queuedCount == 0 && machine.slots.isEmpty, "\(context)")
    }
}
