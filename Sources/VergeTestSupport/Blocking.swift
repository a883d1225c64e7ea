import Dispatch

/// Runs blocking work (reading a pipe to its end, waiting for a process) on a Dispatch thread, never on one of the
/// few threads of Swift's cooperative pool, which would stall every other test's tasks while it blocks.
public func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try work() })
        }
    }
}
