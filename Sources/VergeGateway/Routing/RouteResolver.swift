import Synchronization
import VergeCore

/// Chooses the hosts for a call from the gateway's host list, and decides when a call may ask for a fresher list.
///
/// Calls route with the list they find. Only two cases wait for a refresh (coalesced: one in flight at a time, see
/// ``RefreshCoordinator``): a function no host lists (it may have just been deployed), and a function the nearest
/// healthy host does not list (a deploy may have just reached it) — the latter at most once per `recheckInterval`
/// per function and nearest host. A name still unknown after a refresh is remembered (negative cache) until the host
/// list changes or `negativeTTL` passes, so a burst of calls for unknown names costs at most one control-plane call.
public final class RouteResolver: Sendable {
    private struct State {
        var unknown: [FunctionRef: (generation: UInt64, until: ContinuousClock.Instant)] = [:]
        var rechecked: [String: ContinuousClock.Instant] = [:]
    }

    public let directory: HostDirectory
    public let negativeTTL: Duration
    public let recheckInterval: Duration
    /// Entries kept per map before expired ones are swept (and past which the oldest are dropped).
    static let maxEntries = 10_000
    private let state = Mutex(State())

    public init(directory: HostDirectory, negativeTTL: Duration = .seconds(5), recheckInterval: Duration = .seconds(1))
    {
        self.directory = directory
        self.negativeTTL = negativeTTL
        self.recheckInterval = recheckInterval
    }

    /// What a call does: route now, or first wait for a host list fetched after `moment`.
    public enum Decision: Sendable {
        case route([Route])
        /// Wait for a refresh that started after `moment`, then ask ``routesAfterRefresh(for:from:limit:generation:)``.
        case refresh(after: ContinuousClock.Instant, generation: UInt64)
    }

    /// Candidate hosts for `function`, nearest to `client` first, or that the call should wait for a refresh first.
    /// Never blocks: callers on an event loop wait for the refresh their own way.
    public func decide(for function: FunctionRef, from client: GeoPoint, limit: Int = 4) -> Decision {
        let arrival = ContinuousClock.now
        let routes = directory.candidates(for: function, from: client, limit: limit)
        if directory.isDeployed(function) {
            guard let nearest = directory.nearestHealthy(to: client), routes.first?.host != nearest.name,
                claimRecheck(function, nearest: nearest.name, now: arrival)
            else { return .route(routes) }
        } else if isKnownUnknown(function, now: arrival) {
            return .route([])
        }
        return .refresh(after: arrival, generation: directory.generation)
    }

    /// The candidates once the refresh a ``Decision/refresh(after:generation:)`` asked for is done; a name still
    /// unknown then is remembered (negative cache).
    public func routesAfterRefresh(
        for function: FunctionRef, from client: GeoPoint, limit: Int = 4, generation: UInt64
    ) -> [Route] {
        let fresh = directory.candidates(for: function, from: client, limit: limit)
        if fresh.isEmpty, !directory.isDeployed(function) {
            remember(function, generation: max(generation, directory.generation))
        }
        return fresh
    }

    /// Candidate hosts for `function`, nearest to `client` first. `refresh(moment)` must return once a host list
    /// fetched after `moment` is in the directory (or fetching it failed).
    public func routes(
        for function: FunctionRef, from client: GeoPoint, limit: Int = 4,
        refresh: (ContinuousClock.Instant) async -> Void
    ) async -> [Route] {
        switch decide(for: function, from: client, limit: limit) {
        case .route(let routes):
            return routes
        case .refresh(let moment, let generation):
            await refresh(moment)
            return routesAfterRefresh(for: function, from: client, limit: limit, generation: generation)
        }
    }

    private func isKnownUnknown(_ function: FunctionRef, now: ContinuousClock.Instant) -> Bool {
        let generation = directory.generation
        return state.withLock { state in
            guard let entry = state.unknown[function] else { return false }
            guard entry.generation == generation, entry.until > now else {
                state.unknown[function] = nil
                return false
            }
            return true
        }
    }

    private func remember(_ function: FunctionRef, generation: UInt64) {
        let now = ContinuousClock.now
        state.withLock { state in
            if state.unknown.count >= Self.maxEntries {
                state.unknown = state.unknown.filter { $0.value.generation == generation && $0.value.until > now }
                if state.unknown.count >= Self.maxEntries { state.unknown.removeAll() }
            }
            state.unknown[function] = (generation, now + negativeTTL)
        }
    }

    /// Whether this call may wait for a refresh because the nearest host lacks the function (once per interval).
    private func claimRecheck(_ function: FunctionRef, nearest: String, now: ContinuousClock.Instant) -> Bool {
        let key = "\(function.tenant)/\(function.name)@\(nearest)"
        return state.withLock { state in
            if let last = state.rechecked[key], now < last + recheckInterval { return false }
            if state.rechecked.count >= Self.maxEntries {
                state.rechecked = state.rechecked.filter { now < $0.value + recheckInterval }
                if state.rechecked.count >= Self.maxEntries { state.rechecked.removeAll() }
            }
            state.rechecked[key] = now
            return true
        }
    }
}
