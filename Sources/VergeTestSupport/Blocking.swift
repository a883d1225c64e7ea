import Foundation

/// Runs blocking work (reading a pipe to its end, waiting for a process) on a thread of its own.
///
/// Never on a Dispatch global queue: on Linux, Swift concurrency's tasks run on the threads of that same pool, about
/// as many as cores, so a few blocked reads (clusters starting) stall every other test's tasks for seconds.
public func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = "verge-test-blocking"
        thread.start()
    }
}
