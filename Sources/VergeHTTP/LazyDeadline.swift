import NIOCore

/// A deadline on one event loop that can be set and cleared on every request at the cost of reading the clock:
/// at most one task is scheduled at a time, and it is not cancelled when the deadline is cleared or moved later.
/// When it fires early (the deadline moved on), it schedules itself again for the current deadline; only a deadline
/// moved earlier than the scheduled task replaces it. Scheduling and cancelling a task per request (a promise, a
/// closure and two heap operations each) was a measurable share of a proxied call's cost.
///
/// Use on its event loop only; `action` runs there once the deadline has passed (the deadline is cleared first).
/// `action` should not hold its owner strongly (the owner holds this), and the owner calls `cancel()` when it goes.
package final class LazyDeadline {
    private let eventLoop: any EventLoop
    private let action: () -> Void
    private var deadline: NIODeadline?
    private var scheduled: Scheduled<Void>?
    private var scheduledAt = NIODeadline.distantFuture

    package init(eventLoop: any EventLoop, action: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.action = action
    }

    /// Whether a deadline is set.
    package var isArmed: Bool { deadline != nil }

    /// Sets the deadline to `deadline`, replacing any earlier or later one.
    package func arm(at deadline: NIODeadline) {
        self.deadline = deadline
        if scheduled == nil || deadline < scheduledAt { schedule(at: deadline) }
    }

    /// Sets the deadline `timeout` from now.
    package func arm(in timeout: TimeAmount) {
        arm(at: eventLoop.now + timeout)
    }

    /// Clears the deadline (the scheduled task, if any, finds nothing to do when it fires).
    package func disarm() {
        deadline = nil
    }

    /// Clears the deadline and cancels the scheduled task.
    package func cancel() {
        deadline = nil
        scheduled?.cancel()
        scheduled = nil
        scheduledAt = .distantFuture
    }

    private func schedule(at time: NIODeadline) {
        scheduled?.cancel()
        scheduledAt = time
        scheduled = eventLoop.assumeIsolated().scheduleTask(deadline: time) { [weak self] in
            self?.fire()
        }
    }

    private func fire() {
        scheduled = nil
        scheduledAt = .distantFuture
        guard let deadline else { return }
        if deadline > eventLoop.now {
            schedule(at: deadline)
            return
        }
        self.deadline = nil
        action()
    }
}

@available(*, unavailable)
extension LazyDeadline: Sendable {}
