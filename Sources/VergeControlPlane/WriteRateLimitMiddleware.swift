import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization
import VergeCore
import VergeHTTP

/// Limits the API's writes (POST, PUT, PATCH, DELETE on `/v1/*`, except the cluster's own `/v1/internal/*`) per
/// caller, answering `429 rate_limited` with `retry-after`. A caller is the SHA-256 of the `Authorization` value
/// it presents (none is a caller too), so a token is never kept in memory in clear.
struct WriteRateLimitMiddleware: RouterMiddleware {
    typealias Context = VergeRequestContext
    let limit: RateLimit
    private let state: State

    /// The buckets and the time origin, shared by every copy of the middleware.
    final class State: Sendable {
        let buckets: Mutex<TokenBuckets>
        let clock = ContinuousClock()
        let origin: ContinuousClock.Instant

        init(limit: RateLimit) {
            self.buckets = Mutex(TokenBuckets(limit: limit))
            self.origin = clock.now
        }
    }

    init(limit: RateLimit) {
        self.limit = limit
        self.state = State(limit: limit)
    }

    static let writeMethods: Set<HTTPRequest.Method> = [.post, .put, .patch, .delete]

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        guard Self.writeMethods.contains(request.method), path.hasPrefix("/v1/"), !path.hasPrefix("/v1/internal/")
        else { return try await next(request, context) }
        let presented = request.headers[.authorization] ?? ""
        let caller = SHA256.hash(data: Data(presented.utf8)).map { String(format: "%02x", $0) }.joined()
        let now = Double((state.clock.now - state.origin).microseconds) / 1_000_000
        guard let wait = state.buckets.withLock({ $0.take(caller, now: now) }) else {
            return try await next(request, context)
        }
        let seconds = max(1, Int(wait.rounded(.up)))
        return .error(
            VergeError(
                .rateLimited,
                "too many writes with this token: at most \(limit.burst) at once and \(limit.perSecond) per second; "
                    + "retry in \(seconds) s"
            ),
            headers: [.retryAfter: "\(seconds)"])
    }
}
