import VergeCore

/// Errors from the ledgers' public API are ``VergeError``s: bad input is `.badRequest`, database failures are
/// `.internalError` with the database error as `underlying`. Cancellation passes through unchanged.
enum LedgerErrors {
    static func wrapping<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as VergeError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw VergeError(.internalError, "usage ledger: \(what) failed", underlying: error)
        }
    }

    static func checkLimit(_ limit: Int, _ range: ClosedRange<Int>, _ name: String = "limit") throws {
        guard range.contains(limit) else {
            throw VergeError(
                .badRequest,
                "\(name) must be between \(range.lowerBound) and \(range.upperBound), got \(limit)"
            )
        }
    }
}
