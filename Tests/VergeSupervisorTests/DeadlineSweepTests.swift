import Synchronization
import Testing

@testable import VergeSupervisor

/// The sweep with its timer replaced by a list the test runs by hand: each `tick()` is one sweep.
private final class ManualSweep: Sendable {
    private final class Scheduled: Sendable {
        let actions = Mutex<[@Sendable () -> Void]>([])
    }

    private let scheduled = Scheduled()
    let sweep: DeadlineSweep

    init(resolution: Duration = .milliseconds(100)) {
        let scheduled = self.scheduled
        sweep = DeadlineSweep(resolution: resolution) { _, action in scheduled.actions.withLock { $0.append(action) } }
    }

    var pending: Int { scheduled.actions.withLock { $0.count } }

    /// Runs the sweeps scheduled so far; returns how many ran.
    @discardableResult
    func tick() -> Int {
        let due = scheduled.actions.withLock { actions in
            defer { actions.removeAll() }
            return actions
        }
        for action in due { action() }
        return due.count
    }
}

@Suite("Deadline sweep")
struct DeadlineSweepTests {
    @Test func aPassedDeadlineFiresOnceAtTheNextSweepAndALaterOneWaits() {
        let manual = ManualSweep()
        let fired = Mutex<[String]>([])
        _ = manual.sweep.arm(after: .zero) { fired.withLock { $0.append("now") } }
        _ = manual.sweep.arm(after: .seconds(3600)) { fired.withLock { $0.append("later") } }
        #expect(manual.pending == 1, "the first armed deadline starts one sweep timer")
        manual.tick()
        manual.tick()
        #expect(fired.withLock { $0 } == ["now"])
        #expect(manual.sweep.armedCount == 1)
    }

    @Test func aDisarmedDeadlineNeverFires() {
        let manual = ManualSweep()
        let fired = Mutex(false)
        let token = manual.sweep.arm(after: .zero) { fired.withLock { $0 = true } }
        manual.sweep.disarm(token)
        manual.sweep.disarm(token)
        manual.tick()
        #expect(!fired.withLock { $0 })
        #expect(manual.sweep.armedCount == 0)
    }

    @Test func theSweepStopsAfterASecondWithNothingArmedAndStartsAgainOnTheNextDeadline() {
        let manual = ManualSweep(resolution: .milliseconds(100))
        let token = manual.sweep.arm(after: .seconds(3600)) {}
        manual.sweep.disarm(token)
        var sweeps = 0
        while manual.tick() > 0 { sweeps += 1 }
        #expect(sweeps == 10, "1 s of empty sweeps at 100 ms each")
        #expect(manual.pending == 0)
        let fired = Mutex(false)
        _ = manual.sweep.arm(after: .zero) { fired.withLock { $0 = true } }
        #expect(manual.pending == 1)
        manual.tick()
        #expect(fired.withLock { $0 })
    }

    @Test func armingWhileSweepingStartsNoSecondTimer() {
        let manual = ManualSweep()
        for _ in 0..<100 { _ = manual.sweep.arm(after: .seconds(3600)) {} }
        #expect(manual.pending == 1)
        manual.tick()
        #expect(manual.pending == 1)
    }

    @Test func aRealSupervisorFiresADeadlineWithinItsResolution() async throws {
        try await withSupervisor { supervisor, _ in
            let clock = ContinuousClock()
            let start = clock.now
            let elapsed: Duration = await withCheckedContinuation { continuation in
                _ = supervisor.deadlines.arm(after: .milliseconds(30)) { continuation.resume(returning: clock.now - start) }
            }
            #expect(elapsed >= .milliseconds(30))
            #expect(elapsed < .milliseconds(30) + supervisor.deadlines.resolution + .milliseconds(500))
        }
    }
}
