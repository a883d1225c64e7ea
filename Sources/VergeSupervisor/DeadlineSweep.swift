import Synchronization

/// Deadlines of calls in progress, checked together instead of with a timer each. Arming and disarming one takes a
/// lock and nothing more — no trip to the loop thread per call, which on a busy host costs more than the call's own
/// work. While any deadline is armed, one timer on the loop checks them every `resolution`, so a deadline fires at
/// most `resolution` late; after a second with none armed the timer stops and an idle host wakes for nothing.
public final class DeadlineSweep: Sendable {
    /// Names one armed deadline, to disarm it.
    public struct Token: Sendable, Hashable {
        fileprivate let id: UInt64
    }

    private struct Entry {
        let deadline: ContinuousClock.Instant
        let fire: @Sendable () -> Void
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var lastID: UInt64 = 0
        /// Whether the sweep timer is scheduled.
        var sweeping = false
        /// Sweeps in a row that found nothing armed.
        var emptySweeps = 0
    }

    /// How late a deadline may fire.
    public let resolution: Duration
    private let emptySweepsBeforeStopping: Int
    private let state = Mutex(State())
    private let schedule: @Sendable (Duration, @escaping @Sendable () -> Void) -> Void

    /// `schedule(delay, action)` runs `action` once after `delay` (the supervisor's loop timers).
    init(
        resolution: Duration = .milliseconds(5),
        schedule: @escaping @Sendable (Duration, @escaping @Sendable () -> Void) -> Void
    ) {
        self.resolution = resolution
        self.emptySweepsBeforeStopping = max(1, Int(Duration.seconds(1) / resolution))
        self.schedule = schedule
    }

    /// Runs `fire` once `delay` has passed (within ``resolution``), unless the deadline is disarmed first. `fire` runs
    /// on the supervisor's loop thread and must not block.
    public func arm(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> Token {
        let deadline = ContinuousClock.now + delay
        let (token, start) = state.withLock { state -> (Token, Bool) in
            state.lastID += 1
            state.entries[state.lastID] = Entry(deadline: deadline, fire: fire)
            state.emptySweeps = 0
            defer { state.sweeping = true }
            return (Token(id: state.lastID), !state.sweeping)
        }
        if start { schedule(resolution) { self.sweep() } }
        return token
    }

    /// Disarms a deadline; harmless once it fired, or twice. Once this returns, its `fire` will not start (one
    /// already running may finish).
    public func disarm(_ token: Token) {
        state.withLock { _ = $0.entries.removeValue(forKey: token.id) }
    }

    /// How many deadlines are armed.
    public var armedCount: Int { state.withLock { $0.entries.count } }

    private func sweep() {
        let now = ContinuousClock.now
        let (due, again) = state.withLock { state -> ([Entry], Bool) in
            var due: [Entry] = []
            for (id, entry) in state.entries where entry.deadline <= now {
                due.append(entry)
                state.entries[id] = nil
            }
            if state.entries.isEmpty {
                state.emptySweeps += 1
                if state.emptySweeps >= emptySweepsBeforeStopping {
                    state.sweeping = false
                    return (due, false)
                }
            } else {
                state.emptySweeps = 0
            }
            return (due, true)
        }
        for entry in due { entry.fire() }
        if again { schedule(resolution) { self.sweep() } }
    }
}
