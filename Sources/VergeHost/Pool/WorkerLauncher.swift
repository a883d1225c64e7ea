/// Starts workers in child tasks of the host's task group, so a worker's start never depends on the call that
/// asked for it: if that call gives up, the worker still becomes ready and serves the next one.
public final class WorkerLauncher: Sendable {
    private let requests: AsyncStream<(FunctionPool, Int)>
    private let continuation: AsyncStream<(FunctionPool, Int)>.Continuation

    public init() {
        (requests, continuation) = AsyncStream.makeStream(of: (FunctionPool, Int).self)
    }

    func request(_ pool: FunctionPool, worker: Int) {
        continuation.yield((pool, worker))
    }

    /// Runs until `finish()`; launches in progress complete first.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await (pool, worker) in requests {
                group.addTask { await pool.launch(worker) }
            }
        }
    }

    public func finish() {
        continuation.finish()
    }
}
