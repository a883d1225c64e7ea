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

/// The libuv loop behind a ``SupervisorLoop``: the `uv_loop_t`, the `uv_async_t` that wakes it, and the locked queue
/// of work submitted from other threads.
///
/// `@unchecked Sendable` because the two handle pointers are only dereferenced on the loop thread, with one
/// exception: `uv_async_send`, which libuv documents as thread-safe and which is only called under `state`'s lock
/// while the loop is running (so never after the async handle has been closed).
final class LoopCore: @unchecked Sendable {
    enum Phase {
        case running
        /// `shutdown()` was called; the queue is drained, then every handle is closed.
        case stopping
        /// Every handle has been closed; the loop thread is leaving `uv_run`.
        case closed
    }

    struct State {
        var queue: [@Sendable () -> Void] = []
        var phase = Phase.running
    }

    let name: String
    let uvLoop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let state = Mutex(State())

    init(name: String) throws(VergeError) {
        self.name = name
        uvLoop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        var rc = uv_loop_init(uvLoop)
        guard rc == 0 else {
            uvLoop.deallocate()
            throw VergeError(.internalError, "cannot create the supervisor loop: \(uvErrorDescription(rc))")
        }
        wakeup = allocateHandle(UV_ASYNC)
        rc = uv_async_init(uvLoop, wakeup, loopWakeupCallback)
        guard rc == 0 else {
            free(wakeup)
            uv_loop_close(uvLoop)
            uvLoop.deallocate()
            throw VergeError(.internalError, "cannot create the supervisor loop wakeup: \(uvErrorDescription(rc))")
        }
        // Unretained: the loop thread holds a strong reference for as long as the handle can fire.
        uv_handle_set_data(handlePointer(wakeup), Unmanaged.passUnretained(self).toOpaque())
    }

    /// Queues `work` for the loop thread. Returns false, dropping `work`, once shutdown has begun.
    func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state in
            guard state.phase == .running else { return false }
            state.queue.append(work)
            uv_async_send(wakeup)
            return true
        }
    }

    /// Asks the loop thread to drain its queue, close every handle and leave `uv_run`.
    func requestStop() {
        state.withLock { state in
            guard state.phase == .running else { return }
            state.phase = .stopping
            uv_async_send(wakeup)
        }
    }

    /// The body of the loop thread.
    func run() {
        let threadName = String(decoding: name.utf8.prefix(15), as: UTF8.self)  // the kernel keeps 15 bytes
        #if os(Linux)
        _ = verge_set_thread_name(threadName)
        #endif
        uv_run(uvLoop, UV_RUN_DEFAULT)
        if uv_loop_close(uvLoop) == 0 {
            uvLoop.deallocate()
        }  // else: a handle is still open; leaking the loop is safer than freeing memory libuv still points into
    }

    /// Tears down a loop whose thread was never started.
    func destroyUnstarted() {
        state.withLock { $0.phase = .closed }
        uv_close(handlePointer(wakeup), freeHandleCallback)
        uv_run(uvLoop, UV_RUN_DEFAULT)
        if uv_loop_close(uvLoop) == 0 {
            uvLoop.deallocate()
        }
    }

    /// Runs queued work in FIFO order; once stopping and the queue is empty, closes every handle. Loop thread only.
    fileprivate func drain() {
        while true {
            let (batch, closeNow) = state.withLock { state -> ([@Sendable () -> Void], Bool) in
                let batch = state.queue
                state.queue = []
                if batch.isEmpty && state.phase == .stopping {
                    state.phase = .closed
                    return ([], true)
                }
                return (batch, false)
            }
            if closeNow {
                uv_walk(uvLoop, closeHandleWalker, UnsafeMutableRawPointer(wakeup))
                return
            }
            if batch.isEmpty { return }
            for work in batch { work() }
        }
    }
}

// MARK: - Handles

/// Allocates memory for a libuv handle of `type`. It is freed by the close callback.
func allocateHandle<Handle>(_ type: uv_handle_type) -> UnsafeMutablePointer<Handle> {
    guard let memory = malloc(uv_handle_size(type)) else { fatalError("out of memory allocating a libuv handle") }
    memset(memory, 0, uv_handle_size(type))
    return memory.assumingMemoryBound(to: Handle.self)
}

/// Any libuv handle as the `uv_handle_t` every handle type starts with.
func handlePointer<Handle>(_ handle: UnsafeMutablePointer<Handle>) -> UnsafeMutablePointer<uv_handle_t> {
    UnsafeMutablePointer(OpaquePointer(handle))
}

/// Stores a strong reference to `owner` in the handle; ``releaseAndFreeHandleCallback`` gives it back.
func retain(_ owner: AnyObject, in handle: UnsafeMutablePointer<uv_handle_t>) {
    uv_handle_set_data(handle, Unmanaged.passRetained(owner).toOpaque())
}

/// The object stored by ``retain(_:in:)``, without consuming the reference.
func owner<Owner: AnyObject>(of handle: UnsafeMutablePointer<uv_handle_t>, as _: Owner.Type) -> Owner? {
    guard let data = uv_handle_get_data(handle) else { return nil }
    return Unmanaged<AnyObject>.fromOpaque(data).takeUnretainedValue() as? Owner
}

/// Close callback: releases the handle's owner and frees the handle.
func releaseAndFreeHandleCallback(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle else { return }
    if let data = uv_handle_get_data(handle) {
        uv_handle_set_data(handle, nil)
        Unmanaged<AnyObject>.fromOpaque(data).release()
    }
    free(handle)
}

/// Close callback for handles that own nothing.
private func freeHandleCallback(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    free(handle)
}

private func loopWakeupCallback(_ handle: UnsafeMutablePointer<uv_async_t>?) {
    guard let handle, let data = uv_handle_get_data(handlePointer(handle)) else { return }
    Unmanaged<LoopCore>.fromOpaque(data).takeUnretainedValue().drain()
}

/// Closes every open handle at shutdown. Handles still open here are timers that did not fire and processes that
/// were not reaped: they are forgotten, their callbacks never run.
private func closeHandleWalker(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ wakeup: UnsafeMutableRawPointer?) {
    guard let handle, uv_is_closing(handle) == 0 else { return }
    if UnsafeMutableRawPointer(handle) == wakeup {
        uv_close(handle, freeHandleCallback)  // its data is the loop core, unretained
    } else {
        uv_close(handle, releaseAndFreeHandleCallback)
    }
}

/// libuv's name for an error code, with the system's message: "ENOENT (no such file or directory)".
func uvErrorDescription(_ code: Int32) -> String {
    "\(String(cString: uv_err_name(code))) (\(String(cString: uv_strerror(code))))"
}
