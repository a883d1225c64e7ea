import Synchronization
import Testing
import VergeTestSupport

/// The shares that keep suites of process trees from starving each other: never more holders than shares, first
/// come first served, and a holder that asks again (a nested scope) does not wait for itself.
@Suite struct MachineShareTests {
    /// Counts holders at once and the order in which they got in.
    final class Log: Sendable {
        let state = Mutex<(now: Int, most: Int, order: [String])>((0, 0, []))
        func enter(_ name: String, weight: Int) {
            state.withLock {
                $0.now += weight
                $0.most = max($0.most, $0.now)
                $0.order.append(name)
            }
        }
        func leave(weight: Int) { state.withLock { $0.now -= weight } }
    }

    final class Gate: Sendable {
        private let state = Mutex(false)
        var isOpen: Bool { state.withLock { $0 } }
        func open() { state.withLock { $0 = true } }
    }

    @Test func neverMoreHoldersThanSharesAndTheWholeMachineWaitsItsTurn() async throws {
        let share = MachineShare(shares: 2)
        let log = Log()
        let opened = Gate()
        // Two holders take both shares and wait at the gate; the whole-machine suite queues first, a third
        // single-share suite after it: the third must not overtake it.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for name in ["a", "b"] {
                group.addTask {
                    try await share.run(shares: 1) {
                        log.enter(name, weight: 1)
                        try await Self.waitUntil { opened.isOpen }
                        log.leave(weight: 1)
                    }
                }
            }
            try await Self.waitUntil { log.state.withLock { $0.order.count == 2 } }
            group.addTask {
                try await share.run(shares: 2) {
                    log.enter("whole", weight: 2)
                    // Nested: already holds every share, so this runs at once.
                    try await share.run(shares: 1) { log.enter("nested", weight: 0) }
                    log.leave(weight: 2)
                }
            }
            try await Self.waitUntil { await share.waitingCount == 1 }
            group.addTask {
                try await share.run(shares: 1) {
                    log.enter("late", weight: 1)
                    log.leave(weight: 1)
                }
            }
            try await Self.waitUntil { await share.waitingCount == 2 }
            opened.open()
            try await group.waitForAll()
        }
        let state = log.state.withLock { $0 }
        #expect(state.most <= 2)
        #expect(Array(state.order.dropFirst(2)) == ["whole", "nested", "late"])
    }

    /// Polls `condition` (the shares have no events to wait on).
    static func waitUntil(_ condition: () async -> Bool) async throws {
        while await !condition() { try await Task.sleep(for: .milliseconds(1)) }
    }
}
