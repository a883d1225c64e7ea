import Synchronization
import Testing

@testable import VergeSupervisor

@Suite("Supervisor timers")
struct SupervisorTimerTests {
    @Test(arguments: [0, 1, 25, 80] as [Int])
    func timerFiresNoSoonerThanItsDelay(milliseconds: Int) async throws {
        try await withSupervisor { supervisor, _ in
            let delay = Duration.milliseconds(milliseconds)
            let started = ContinuousClock.now
            let elapsed = try await withDeadline("the timer") {
                await withCheckedContinuation { continuation in
                    _ = supervisor.startTimer(after: delay) {
                        continuation.resume(returning: started.duration(to: .now))
                    }
                }
            }
            #expect(elapsed >= delay)
        }
    }

    @Test func cancelledTimerDoesNotFire() async throws {
        try await withSupervisor { supervisor, loop in
            let fired = Mutex<[String]>([])
            let started = ContinuousClock.now

            // Cancelled before the loop armed it.
            let unarmed = supervisor.startTimer(after: .milliseconds(20)) { fired.withLock { $0.append("unarmed") } }
            unarmed.cancel()

            // Cancelled on the loop thread right after arming (work runs in submission order).
            let armedOnLoop = supervisor.startTimer(after: .milliseconds(50)) {
                fired.withLock { $0.append("on loop") }
            }
            loop.execute { armedOnLoop.cancel() }

            // Cancelled from another thread once armed.
            let delay = Duration.milliseconds(250)
            let armed = supervisor.startTimer(after: delay) { fired.withLock { $0.append("armed") } }
            try await barrier(loop)
            #expect(armed.isArmed || fired.withLock { $0.contains("armed") })  // armed, or (very slow machine) fired
            armed.cancel()
            let cancelledInTime = started.duration(to: .now) < delay
            armed.cancel()  // twice is harmless
            try await barrier(loop)
            #expect(!armed.isArmed)

            try await Task.sleep(until: started.advanced(by: delay + .milliseconds(250)))
            let names = fired.withLock { $0 }
            #expect(!names.contains("unarmed"))
            #expect(!names.contains("on loop"))
            if cancelledInTime {  // a very slow machine may reach cancel() after the delay: nothing to check then
                #expect(!names.contains("armed"))
            }
        }
    }

    @Test func cancellingAfterFiringIsHarmless() async throws {
        try await withSupervisor { supervisor, _ in
            let fired = Mutex(0)
            let timer = supervisor.startTimer(after: .milliseconds(1)) { fired.withLock { $0 += 1 } }
            try await eventually("the timer") { fired.withLock { $0 } == 1 }
            timer.cancel()
            timer.cancel()
            try await Task.sleep(for: .milliseconds(20))
            #expect(fired.withLock { $0 } == 1)
        }
    }

    @Test func timersFireInOrder() async throws {
        try await withSupervisor { supervisor, _ in
            let order = Mutex<[Int]>([])
            // Equal delays fire in the order they were started; well-separated delays in the order of their delays.
            for i in 0..<100 {
                _ = supervisor.startTimer(after: .milliseconds(10)) { order.withLock { $0.append(i) } }
            }
            for (i, delay) in [(203, 120), (201, 40), (202, 80)] {
                _ = supervisor.startTimer(after: .milliseconds(delay)) { order.withLock { $0.append(i) } }
            }
            try await eventually("103 timers") { order.withLock { $0.count } == 103 }
            #expect(order.withLock { $0 } == Array(0..<100) + [201, 202, 203])
        }
    }

    @Test func timersRunOnTheLoopThread() async throws {
        try await withSupervisor { supervisor, loop in
            let onLoop = try await withDeadline("the timer") {
                await withCheckedContinuation { continuation in
                    _ = supervisor.startTimer(after: .zero) { continuation.resume(returning: loop.isLoopThread) }
                }
            }
            #expect(onLoop)
        }
    }

    /// Waits until the loop has run everything submitted before.
    private func barrier(_ loop: SupervisorLoop) async throws {
        try await withDeadline("the loop") {
            await withCheckedContinuation { continuation in loop.execute { continuation.resume() } }
        }
    }

    @Test func durationsRoundUpToMilliseconds() {
        #expect(Duration.zero.roundedUpMilliseconds == 0)
        #expect(Duration.milliseconds(-5).roundedUpMilliseconds == 0)
        #expect(Duration.nanoseconds(1).roundedUpMilliseconds == 1)
        #expect(Duration.milliseconds(25).roundedUpMilliseconds == 25)
        #expect((Duration.milliseconds(25) + .microseconds(1)).roundedUpMilliseconds == 26)
        #expect(Duration.seconds(3).roundedUpMilliseconds == 3000)
    }
}
