import Synchronization
import Testing

@testable import VergeSupervisor

/// The sweep with its loop timers replaced by a list the test runs by hand.
private final class ManualSweep: Sendable {
    private final class Scheduled: Sendable {
        let wakeUps = Mutex<[(delay: Duration, action: @Sendable () -> Void)]>([])
    }

    private let scheduled = Scheduled()
    let sweep: DeadlineSweep

    init(resolution: Duration = .milliseconds(5)) {
        let scheduled = self.scheduled
        sweep = DeadlineSweep(resolution: resolution) { delay, action in
            scheduled.wakeUps.withLock { $0.append((delay, action)) }
        }
    }

    /// Delays of the wake-ups scheduled and not yet run.
    var pending: [Duration] { scheduled.wakeUps.withLock { $0.map(\.delay) } }

    /// Runs the wake-ups scheduled so far, whatever their delay; returns how many ran.
    @discardableResult
    func wakeUp() -> Int {
        let due = scheduled.wakeUps.withLock { wakeUps in
            defer { wakeUps.removeAll() }
            return wakeUps
        }
        for wakeUp in due { wakeUp.action() }
        return due.count
    }
}

@Suite("Deadline sweep")
struct DeadlineSweepTests {
    @Test func aPassedDeadlineFiresOnceAndALaterOneWaitsForItsOwnWakeUp() {
        let manual = ManualSweep()
        let fired = Mutex<[String]>([])
        _ = manual.sweep.arm(after: .zero) { fired.withLock { $0.append("now") } }
        _ = manual.sweep.arm(after: .seconds(3600)) { fired.withLock { $0.append("later") } }
        #expect(manual.pending.count == 1, "a later deadline needs no wake-up of its own")
        manual.wakeUp()
        #expect(fired.withLock { $0 } == ["now"])
        #expect(manual.sweep.armedCount == 1)
        let next = manual.pending
        #expect(next.count == 1 && next[0] > .seconds(3599), "the next wake-up is for the deadline left: \(next)")
    }

    @Test func deadlinesArmedLaterThanTheWakeUpScheduleNothing() {
        let manual = ManualSweep()
        for _ in 0..<100 { _ = manual.sweep.arm(after: .seconds(30)) {} }
        #expect(manual.pending.count == 1)
    }

    @Test func anEarlierDeadlineSchedulesAnEarlierWakeUp() {
        let manual = ManualSweep()
        let fired = Mutex<[String]>([])
        _ = manual.sweep.arm(after: .seconds(3600)) { fired.withLock { $0.append("later") } }
        _ = manual.sweep.arm(after: .zero) { fired.withLock { $0.append("now") } }
        #expect(manual.pending.count == 2)
        manual.wakeUp()
        #expect(fired.withLock { $0 } == ["now"], "nothing fires before its deadline")
    }

    @Test func aDisarmedDeadlineNeverFiresAndAnEmptyTableSchedulesNoWakeUp() {
        let manual = ManualSweep()
        let fired = Mutex(false)
        let token = manual.sweep.arm(after: .zero) { fired.withLock { $0 = true } }
        manual.sweep.disarm(token)
        manual.sweep.disarm(token)
        manual.wakeUp()
        #expect(!fired.withLock { $0 })
        #expect(manual.sweep.armedCount == 0)
        #expect(manual.pending.isEmpty, "nothing armed: the host does not wake")
        _ = manual.sweep.arm(after: .zero) { fired.withLock { $0 = true } }
        #expect(manual.pending.count == 1)
        manual.wakeUp()
        #expect(fired.withLock { $0 })
    }

    @Test func aRealSupervisorFiresADeadlineNeitherEarlyNorMuchLate() async throws {
        try await withSupervisor { supervisor, _ in
            let clock = ContinuousClock()
            let start = clock.now
            let elapsed: Duration = await withCheckedContinuation { continuation in
                _ = supervisor.deadlines.arm(after: .milliseconds(30)) { continuation.resume(returning: clock.now - start) }
            }
            #expect(elapsed >= .milliseconds(30))
            // How late exactly is the manual-clock tests' work; a loaded machine may not run the loop's thread for
            // a while, so this bound only tells a fired timer from a forgotten one.
            #expect(elapsed < .seconds(3))
        }
    }
}
