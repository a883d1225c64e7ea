/// The life of one worker process, with no process: `starting → ready ⇄ busy → draining → exited`.
///
/// - `starting`: asked for (waiting for a host-wide admission grant, or spawned and not yet `ready`).
/// - `ready`: idle, waiting for a call; `generation` names this idle period so a stale idle timer is recognised.
/// - `busy`: serving exactly one call.
/// - `draining`: being stopped (idle too long, reclaimed for another function, yielded its slot, or broken); it
///   takes no call and ends in `exited`.
/// - `exited`: the process is gone; nothing leaves this state.
///
/// Any state may end in `exited` (a crash). Each event says whether it applied, so a late or duplicate event (a
/// timer firing after the worker moved on) is recognised and ignored by its owner. `PoolStateMachine` holds one per
/// worker and drives it.
struct WorkerLifecycle: Equatable, Sendable {
    enum State: Equatable, Sendable {
        case starting
        case ready(generation: Int)
        case busy
        case draining
        case exited
    }

    private(set) var state: State = .starting

    init() {}

    var isReady: Bool {
        if case .ready = state { return true }
        return false
    }

    /// The worker sent `ready` and is idle (`starting → ready`).
    mutating func becameReady(generation: Int) -> Bool {
        guard state == .starting else { return false }
        state = .ready(generation: generation)
        return true
    }

    /// A call takes the worker: straight from `starting` when a call was waiting for it, or from `ready`.
    mutating func assign() -> Bool {
        switch state {
        case .starting, .ready:
            state = .busy
            return true
        case .busy, .draining, .exited:
            return false
        }
    }

    /// The call ended and the worker can take another (`busy → ready`).
    mutating func finish(generation: Int) -> Bool {
        guard state == .busy else { return false }
        state = .ready(generation: generation)
        return true
    }

    /// The idle timer of `generation` fired: applies only if the worker is still in that idle period.
    mutating func idleExpired(generation: Int) -> Bool {
        guard state == .ready(generation: generation) else { return false }
        state = .draining
        return true
    }

    /// The worker is being stopped. Returns the state it left, or `nil` if it was already draining or gone.
    mutating func drain() -> State? {
        switch state {
        case .starting, .ready, .busy:
            defer { state = .draining }
            return state
        case .draining, .exited:
            return nil
        }
    }

    /// The process is gone. Returns the state it left, or `nil` if it had already exited.
    mutating func exit() -> State? {
        guard state != .exited else { return nil }
        defer { state = .exited }
        return state
    }
}
