import Synchronization
import VergeCore

/// Coalesces on-demand refreshes of the host list: a caller that needs a list fetched after a given moment either
/// joins a refresh that started after it, or starts one. At most one refresh is in flight, however many callers ask,
/// so a flood of requests for unknown functions cannot become a flood of control-plane calls; and consecutive
/// refreshes start at least `minimumSpacing` apart, so back-to-back demands cost at most one call per spacing.
final class RefreshCoordinator: Sendable {
    private struct State {
        var lastCompletedStart: ContinuousClock.Instant?
        var inFlight: (start: ContinuousClock.Instant, done: OneShot<Void>)?
    }

    private let state = Mutex(State())
    let minimumSpacing: Duration

    init(minimumSpacing: Duration = .milliseconds(100)) {
        self.minimumSpacing = minimumSpacing
    }

    private enum Step {
        case done
        case wait(OneShot<Void>)
        case perform(ContinuousClock.Instant, OneShot<Void>)
    }

    /// Returns once a refresh that started at or after `moment` has completed (successfully or not).
    func refresh(after moment: ContinuousClock.Instant, _ perform: () async -> Void) async {
        while true {
            let step = state.withLock { state -> Step in
                if let completed = state.lastCompletedStart, completed >= moment { return .done }
                if let inFlight = state.inFlight { return .wait(inFlight.done) }
                let start = ContinuousClock.now
                let done = OneShot<Void>()
                state.inFlight = (start, done)
                return .perform(start, done)
            }
            switch step {
            case .done:
                return
            case .wait(let done):
                await done.wait()
            case .perform(var start, let done):
                let previous = state.withLock { $0.lastCompletedStart }
                if let previous, start < previous + minimumSpacing {
                    try? await Task.sleep(until: previous + minimumSpacing, clock: .continuous)
                    // Callers that joined while this one waited arrived before the fetch starts: it serves them too.
                    start = ContinuousClock.now
                }
                await perform()
                state.withLock { state in
                    state.lastCompletedStart = max(state.lastCompletedStart ?? start, start)
                    state.inFlight = nil
                }
                done.set(())
                return
            }
        }
    }
}
