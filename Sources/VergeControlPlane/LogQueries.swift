import Synchronization

/// Bounds on `GET /v1/functions/{name}/logs`, which fans out to every healthy host: at most `maxLines` lines per
/// query, `maxBytesPerHost` read from each host (lines are at most 16 KiB), `maxConcurrent` queries at once.
final class LogQueries: Sendable {
    static let maxLines = 1000
    static let maxBytesPerHost = 20 * 1024 * 1024
    static let maxConcurrent = 4

    private let running = Mutex(0)

    /// Takes a place for one query; `false` when `maxConcurrent` are running.
    func enter() -> Bool {
        running.withLock { running in
            guard running < Self.maxConcurrent else { return false }
            running += 1
            return true
        }
    }

    func leave() {
        running.withLock { $0 -= 1 }
    }
}
