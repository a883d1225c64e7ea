import CLibUV
import Synchronization
import VergeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A libuv loop on its own thread. One per process is enough; several hosts in one process share it.
///
/// Everything libuv does — spawning, reaping, timers — happens on this thread; other threads hand it work through
/// ``execute(_:)``, a locked FIFO queue that wakes the loop with a `uv_async_t`.
public final class SupervisorLoop: Sendable {
    let core: LoopCore
    private let thread: pthread_t
    /// Whether the thread has been joined or detached; held while joining so concurrent `shutdown()`s all wait.
    private let released = Mutex(false)

    /// Creates the loop and starts its thread. `name` names the thread (the kernel keeps its first 15 bytes).
    public init(name: String = "verge-supervisor") throws(VergeError) {
        let core = try LoopCore(name: name)
        let context = Unmanaged.passRetained(core)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, supervisorLoopThreadMain, context.toOpaque())
        guard rc == 0 else {
            context.release()
            core.destroyUnstarted()
            throw VergeError(.internalError, "cannot start the supervisor thread: \(String(cString: strerror(rc)))")
        }
        self.core = core
        self.thread = thread
    }

    deinit {
        core.requestStop()
        if isLoopThread {
            detachThread()
        } else {
            joinThread()
        }
    }

    /// Runs `work` on the loop thread, in submission order. Safe from any thread.
    ///
    /// After ``shutdown()`` has begun, `work` is dropped.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        _ = core.submit(work)
    }

    /// Stops the loop: runs the work already queued, closes its handles and joins the thread. Processes still running
    /// are not killed (their owner signals them first) and are no longer watched; pending timers never fire.
    /// Idempotent, and safe from any thread; on the loop thread itself it returns without waiting.
    public func shutdown() {
        core.requestStop()
        if !isLoopThread {
            joinThread()
        }
    }

    /// Queues `work`, or returns false when the loop is shutting down.
    func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        core.submit(work)
    }

    /// Whether the caller runs on the loop thread.
    var isLoopThread: Bool {
        pthread_equal(pthread_self(), thread) != 0
    }

    private func joinThread() {
        released.withLock { released in
            guard !released else { return }
            pthread_join(thread, nil)
            released = true
        }
    }

    private func detachThread() {
        released.withLock { released in
            guard !released else { return }
            pthread_detach(thread)
            released = true
        }
    }
}

private func supervisorLoopThreadMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let context else { return nil }
    let core = Unmanaged<LoopCore>.fromOpaque(context).takeRetainedValue()
    core.run()
    return nil
}
