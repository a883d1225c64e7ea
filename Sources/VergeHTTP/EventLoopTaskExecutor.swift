import NIOCore

/// An event loop as a task executor: a task that prefers it runs its jobs on the event loop's thread.
///
/// A host's call crosses several channels: the client's connection, the worker's socket, and back. With tasks on the
/// shared concurrency pool, every await on a channel is a hand-off between threads (the event loop resumes a
/// continuation on the pool, the pool writes through the event loop), and on small machines these context switches
/// cost more than the work. A connection's handler that prefers its channel's event loop resumes where the bytes
/// arrive, and writes from the thread that owns the channel.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    /// The executor of `eventLoop`. Cheap: one per connection is fine, and none outlives what uses it.
    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
