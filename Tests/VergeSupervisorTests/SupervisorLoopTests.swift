import Logging
import Synchronization
import Testing
import VergeCore

@testable import VergeSupervisor

@Suite("Supervisor loop")
struct SupervisorLoopTests {
    @Test func executeRunsWorkInOrderOnTheLoopThread() async throws {
        let loop = try SupervisorLoop()
        defer { loop.shutdown() }
        let seen = Mutex<[Int]>([])
        let offLoop = Mutex(0)
        for i in 0..<1000 {
            loop.execute {
                if !loop.isLoopThread { offLoop.withLock { $0 += 1 } }
                seen.withLock { $0.append(i) }
            }
        }
        try await eventually("1000 work items") { seen.withLock { $0.count } == 1000 }
        #expect(seen.withLock { $0 } == Array(0..<1000))
        #expect(offLoop.withLock { $0 } == 0)
    }

    @Test func shutdownRunsQueuedWorkJoinsAndIsIdempotent() throws {
        let loop = try SupervisorLoop()
        let ran = Mutex(0)
        for _ in 0..<10 { loop.execute { ran.withLock { $0 += 1 } } }
        loop.shutdown()
        #expect(ran.withLock { $0 } == 10)
        loop.shutdown()
        loop.execute { ran.withLock { $0 += 1 } }  // dropped
        loop.shutdown()
        #expect(ran.withLock { $0 } == 10)
    }

    @Test func concurrentShutdownsAllReturn() async throws {
        let loop = try SupervisorLoop()
        try await withDeadline("concurrent shutdowns") {
            await withDiscardingTaskGroup { group in
                for _ in 0..<8 { group.addTask { loop.shutdown() } }
            }
        }
    }

    @Test func shutdownFromTheLoopThreadDoesNotDeadlock() async throws {
        let loop = try SupervisorLoop()
        let done = Mutex(false)
        loop.execute {
            loop.shutdown()
            done.withLock { $0 = true }
        }
        try await eventually("the loop thread") { done.withLock { $0 } }
        try await withDeadline("the join") { loop.shutdown() }
    }

    @Test func shutdownClosesPendingTimersWithoutFiringThem() async throws {
        let loop = try SupervisorLoop()
        let supervisor = Supervisor(loop: loop, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        let fired = Mutex(false)
        let timer = supervisor.startTimer(after: .seconds(60)) { fired.withLock { $0 = true } }
        try await withDeadline("shutdown") { loop.shutdown() }
        timer.cancel()  // harmless after shutdown
        let late = supervisor.startTimer(after: .zero) { fired.withLock { $0 = true } }
        late.cancel()
        #expect(!fired.withLock { $0 })
    }

    @Test func spawnAfterShutdownThrows() async throws {
        let loop = try SupervisorLoop()
        let supervisor = Supervisor(loop: loop, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        loop.shutdown()
        let error = try await #require(throws: VergeError.self) {
            try await supervisor.spawn(shell("exit 0", descriptors: []), onExit: { _ in })
        }
        #expect(error.code == .shuttingDown)
    }

    @Test func droppingTheLoopStopsIt() async throws {
        try await withDeadline("deinit") {
            var loop: SupervisorLoop? = try SupervisorLoop()
            loop?.execute {}
            loop = nil
            _ = loop
        }
    }
}
