import Synchronization

/// A value that is set once and awaited by any number of tasks.
public final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<State>(State())

    private struct State {
        var value: Value?
        var waiters: [CheckedContinuation<Value, Never>] = []
        /// Waiters that give up when their task is cancelled, by id.
        var cancellable: [Int: CheckedContinuation<Value?, Never>] = [:]
        var nextID = 0
    }

    public init() {}

    /// Sets the value and wakes the waiters. Later calls are ignored; returns whether this call set it.
    @discardableResult
    public func set(_ value: Value) -> Bool {
        let woken = state.withLock { state -> ([CheckedContinuation<Value, Never>], [CheckedContinuation<Value?, Never>])? in
            guard state.value == nil else { return nil }
            state.value = value
            defer {
                state.waiters.removeAll()
                state.cancellable.removeAll()
            }
            return (state.waiters, Array(state.cancellable.values))
        }
        guard let (waiters, cancellable) = woken else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        for waiter in cancellable { waiter.resume(returning: value) }
        return true
    }

    /// The value, if set.
    public var value: Value? { state.withLock { $0.value } }

    /// The value once set, or `nil` as soon as the calling task is cancelled.
    public func waitUnlessCancelled() async -> Value? {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                let immediate = state.withLock { state -> Value?? in
                    if let value = state.value { return .some(value) }
                    if Task.isCancelled { return .some(nil) }
                    state.cancellable[id] = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.cancellable.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    public func wait() async -> Value {
        await withCheckedContinuation { continuation in
            let value = state.withLock { state -> Value? in
                if let value = state.value { return value }
                state.waiters.append(continuation)
                return nil
            }
            if let value { continuation.resume(returning: value) }
        }
    }
}
