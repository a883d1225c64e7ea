import Synchronization

/// Deadlines the host arms and disarms on every call — a call's deadline, a queued call's patience, an idle
/// worker's retirement — kept in one table instead of a loop timer each. Arming or disarming one takes a lock and
/// nothing more in the common case: a timer per deadline would cost two trips to the loop thread per call (start,
/// cancel), which on a busy host costs more than the call's own work.
///
/// One loop timer is armed for the earliest deadline. A new deadline later than that wake-up (the usual case: the
/// same timeout, armed later) needs no timer of its own; only one earlier by more than `resolution` schedules a new
/// wake-up. A wake-up fires what is due, then schedules the next for the earliest deadline left, if any: a host with
/// nothing armed never wakes. Deadlines never fire early, and at most `resolution` late.
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
        /// When the earliest scheduled wake-up comes, if one is scheduled.
        var wake: ContinuousClock.Instant?
    }

    /// How late a deadline may fire.
    public let resolution: Duration
    private let state = Mutex(State())
    private let schedule: @Sendable (Duration, @escaping @Sendable () -> Void) -> Void

    /// `schedule(delay, action)` runs `action` once after `delay` (the supervisor's loop timers).
    init(
        resolution: Duration = .milliseconds(5),
        schedule: @escaping @Sendable (Duration, @escaping @Sendable () -> Void) -> Void
    ) {
        self.resolution = resolution
        self.schedule = schedule
    }

    /// Runs `fire` once `delay` has passed (at most ``resolution`` late), unless the deadline is disarmed first.
    /// `fire` runs on the supervisor's loop thread and must not block.
    public func arm(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> Token {
        let now = ContinuousClock.now
        let deadline = now + delay
        let (token, wakeIn) = state.withLock { state -> (Token, Duration?) in
            state.lastID += 1
            state.entries[state.lastID] = Entry(deadline: deadline, fire: fire)
            let token = Token(id: state.lastID)
            if let wake = state.wake, wake <= deadline + resolution { return (token, nil) }
            state.wake = deadline
            return (token, max(.zero, deadline - now))
        }
        if let wakeIn { schedule(wakeIn) { self.sweep() } }
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
        let (due, wakeIn) = state.withLock { state -> ([Entry], Duration?) in
            // A wake-up scheduled for later than this one (an earlier deadline came along meanwhile) stays.
            if let wake = state.wake, wake > now + resolution { return ([], nil) }
            var due: [Entry] = []
            var earliest: ContinuousClock.Instant?
            for (id, entry) in state.entries {
                if entry.deadline <= now {
                    due.append(entry)
                    state.entries[id] = nil
                } else if earliest.map({ entry.deadline < $0 }) ?? true {
                    earliest = entry.deadline
                }
            }
            state.wake = earliest
            return (due, earliest.map { $0 - now })
        }
        for entry in due { entry.fire() }
        if let wakeIn { schedule(wakeIn) { self.sweep() } }
    }
}
