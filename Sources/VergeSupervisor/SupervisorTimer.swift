import CLibUV
import Synchronization

/// A one-shot timer on the supervisor loop, from ``Supervisor/startTimer(after:_:)``.
public final class SupervisorTimer: Sendable {
    private struct State {
        /// The action, until the timer fires or is cancelled.
        var action: (@Sendable () -> Void)?
        /// The armed uv_timer_t; only dereferenced on the loop thread.
        var handle: TimerHandle?
    }

    private let loop: LoopCore
    private let state: Mutex<State>

    init(loop: LoopCore, action: @escaping @Sendable () -> Void) {
        self.loop = loop
        self.state = Mutex(State(action: action))
    }

    /// Stops the timer: once this returns, the action will not start. Harmless after it fired, or twice.
    public func cancel() {
        let armed = state.withLock { state -> Bool in
            state.action = nil
            return state.handle != nil
        }
        guard armed else { return }  // not armed yet (arming sees no action) or already done
        _ = loop.submit { self.disarm() }
    }

    /// Whether its libuv timer is armed: started on the loop, and not yet fired or cancelled.
    var isArmed: Bool {
        state.withLock { $0.handle != nil }
    }

    /// Arms the timer on the loop thread.
    func arm(milliseconds: UInt64) {
        guard state.withLock({ $0.action != nil }) else { return }  // cancelled before it was armed
        let handle: UnsafeMutablePointer<uv_timer_t> = allocateHandle(UV_TIMER)
        uv_timer_init(loop.uvLoop, handle)
        retain(self, in: handlePointer(handle))
        // The loop's clock is cached and truncated to milliseconds: refresh it and add one so the timer never fires
        // before `delay` has passed since `startTimer`.
        uv_update_time(loop.uvLoop)
        uv_timer_start(handle, supervisorTimerCallback, milliseconds &+ 1, 0)
        let cancelled = state.withLock { state -> Bool in
            guard state.action != nil else { return true }
            state.handle = TimerHandle(pointer: handle)
            return false
        }
        if cancelled {  // cancelled while arming: its cancel() saw no handle, so close it here
            uv_timer_stop(handle)
            uv_close(handlePointer(handle), releaseAndFreeHandleCallback)
        }
    }

    /// Closes the handle after a cancel. Loop thread only.
    private func disarm() {
        guard let handle = state.withLock({ state in state.handle.take() })?.pointer else { return }
        uv_timer_stop(handle)
        uv_close(handlePointer(handle), releaseAndFreeHandleCallback)
    }

    /// The timer expired. Loop thread only.
    fileprivate func expired(_ handle: UnsafeMutablePointer<uv_timer_t>) {
        let action = state.withLock { state in
            state.handle = nil
            return state.action.take()
        }
        uv_close(handlePointer(handle), releaseAndFreeHandleCallback)
        action?()
    }
}

/// A uv_timer_t pointer that may sit in the timer's locked state; it is only dereferenced on the loop thread.
private struct TimerHandle: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<uv_timer_t>
}

private func supervisorTimerCallback(_ handle: UnsafeMutablePointer<uv_timer_t>?) {
    guard let handle, let timer = owner(of: handlePointer(handle), as: SupervisorTimer.self) else { return }
    timer.expired(handle)
}

extension Duration {
    /// Whole milliseconds, rounded up; negative durations are zero.
    var roundedUpMilliseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, !(seconds == 0 && attoseconds <= 0) else { return 0 }
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let (wholeMilliseconds, remainder) = attoseconds.quotientAndRemainder(dividingBy: attosecondsPerMillisecond)
        let milliseconds = UInt64(seconds).multipliedReportingOverflow(by: 1000)
        guard !milliseconds.overflow else { return .max / 2 }
        return milliseconds.partialValue + UInt64(wholeMilliseconds) + (remainder > 0 ? 1 : 0)
    }
}
