import VergeSandbox

/// Starts workers in child tasks of the host's task group, so a worker's start never depends on the call that
/// asked for it: if that call gives up, the worker still becomes ready and serves the next one. Refills the pool of
/// parked sandbox helpers the same way.
public final class WorkerLauncher: Sendable {
    private enum Request: Sendable {
        case worker(FunctionPool, Int)
        case refill(ParkedHelperPool)
    }

    private let requests: AsyncStream<Request>
    private let continuation: AsyncStream<Request>.Continuation

    public init() {
        (requests, continuation) = AsyncStream.makeStream(of: Request.self)
    }

    func request(_ pool: FunctionPool, worker: Int) {
        continuation.yield(.worker(pool, worker))
    }

    /// Starts parked helpers until `helpers` is full again.
    func refill(_ helpers: ParkedHelperPool) {
        continuation.yield(.refill(helpers))
    }

    /// Runs until `finish()`; launches in progress complete first.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await request in requests {
                switch request {
                case .worker(let pool, let worker): group.addTask { await pool.launch(worker) }
                case .refill(let helpers): group.addTask { await helpers.refill() }
                }
            }
        }
    }

    public func finish() {
        continuation.finish()
    }
}
