#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a worker's async handlers on the worker's own thread, the one that reads the channel.
///
/// A worker serves one call at a time, so it needs no thread pool: handing each call to Swift's cooperative pool
/// and back costs thread wake-ups and, on a busy host where many workers share few cores, spinning threads that
/// burn several times the CPU of the call itself. With this executor as the task's preference, every job of the
/// handler runs here, in order, and the thread sleeps only when the handler waits for something outside.
final class InlineExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
    // Guarded by `mutex`; `condition` signals new jobs.
    private var jobs: [UnownedJob] = []
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Runs `operation` to completion on the calling thread and returns its result.
    func run<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        Task(executorPreference: self) {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            box.set(result)
            self.enqueueWakeUp()
        }
        while true {
            if let result = box.take() { return try result.get() }
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty && !wokenUp { pthread_cond_wait(&condition, &mutex) }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            wokenUp = false
            pthread_mutex_unlock(&mutex)
            for job in batch {
                job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
            }
        }
    }

    private var wokenUp = false

    private func enqueueWakeUp() {
        pthread_mutex_lock(&mutex)
        wokenUp = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }
}

/// A result handed from the handler's task to the thread that waits for it.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var result: Result<T, any Error>?

    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    func set(_ value: Result<T, any Error>) {
        pthread_mutex_lock(&mutex)
        result = value
        pthread_mutex_unlock(&mutex)
    }

    func take() -> Result<T, any Error>? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return result.take()
    }
}
