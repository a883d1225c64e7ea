import Synchronization
import VergeCore

/// One host as the gateway routes to it.
public struct RoutableHost: Sendable, Equatable {
    public var name: String
    public var url: String
    public var location: GeoPoint
    /// Functions (tenant/name) the host reports it serves.
    public var functions: Set<FunctionRef>
    /// The regions each function's manifest pins it to, as the host reports them; absent: anywhere.
    public var regions: [FunctionRef: [String]]
    public var health: HostHealthStateMachine
    /// Whether the host reports that it holds this gateway's proof for it (``HostSummary/trustedGateways``): until
    /// then it would refuse the gateway's calls, so none is sent there.
    public var acceptsGateway: Bool

    public init(
        name: String, url: String, location: GeoPoint, functions: Set<FunctionRef>, health: HostHealthStateMachine,
        regions: [FunctionRef: [String]] = [:], acceptsGateway: Bool = true
    ) {
        self.acceptsGateway = acceptsGateway
        self.name = name
        self.url = url
        self.location = location
        self.functions = functions
        self.regions = regions
        self.health = health
    }
}

public struct FunctionRef: Hashable, Sendable {
    public var tenant: String
    public var name: String

    public init(tenant: String, name: String) {
        self.tenant = tenant
        self.name = name
    }
}

/// A routing decision.
public struct Route: Sendable, Equatable {
    public var host: String
    public var url: String
    public var distanceKm: Double
}

/// The gateway's view of the hosts: the list comes from the control plane, health from the gateway's own checks,
/// saturation from hosts' own `503` answers. Routing decisions read an immutable ``RoutingTable`` (spatial indexes)
/// that is rebuilt whenever the list or a host's health changes.
public final class HostDirectory: Sendable {
    private struct State {
        var hosts: [String: RoutableHost] = [:]
        var table = RoutingTable([])
        /// Host → until when it said it is saturated, per function.
        var saturated: [FunctionRef: [String: ContinuousClock.Instant]] = [:]
        var generation: UInt64 = 0
        /// Changes with every change of `hosts` that the table depends on.
        var version: UInt64 = 0
    }

    private let state = Mutex(State())
    private let unhealthyThreshold: Int

    public init(unhealthyThreshold: Int) {
        self.unhealthyThreshold = unhealthyThreshold
    }

    /// Replaces the host list, keeping the health of hosts already known. Rebuilds the indexes only on a change,
    /// and outside the lock: calls keep routing with the previous table while a new one is built. With `gatewayID`,
    /// only the hosts whose summary lists that gateway credential among those they trust are routable.
    public func update(_ summaries: [HostSummary], gatewayID: String? = nil) {
        for attempt in 1...3 {
            let (current, version) = state.withLock { ($0.hosts, $0.version) }
            let next = merge(summaries, into: current, gatewayID: gatewayID)
            guard next != current else { return }
            let table = RoutingTable(next.values)
            let installed = state.withLock { state -> Bool in
                // A health change since the snapshot: start again from the new state (build in the lock at last).
                guard state.version == version || attempt == 3 else { return false }
                state.hosts =
                    state.version == version ? next : merge(summaries, into: state.hosts, gatewayID: gatewayID)
                state.table = state.version == version ? table : RoutingTable(state.hosts.values)
                state.version &+= 1
                state.generation &+= 1
                return true
            }
            if installed { return }
        }
    }

    private func merge(
        _ summaries: [HostSummary], into current: [String: RoutableHost], gatewayID: String?
    ) -> [String: RoutableHost] {
        var next: [String: RoutableHost] = [:]
        for summary in summaries {
            let functions = Set(summary.functions.map { FunctionRef(tenant: $0.tenant, name: $0.name) })
            var regions: [FunctionRef: [String]] = [:]
            for function in summary.functions {
                if let pinned = function.regions, !pinned.isEmpty {
                    regions[FunctionRef(tenant: function.tenant, name: function.name)] = pinned
                }
            }
            var host =
                current[summary.name]
                ?? RoutableHost(
                    name: summary.name, url: summary.url, location: summary.location, functions: functions,
                    health: HostHealthStateMachine(unhealthyThreshold: unhealthyThreshold)
                )
            if host.url != summary.url {
                host.health = HostHealthStateMachine(unhealthyThreshold: unhealthyThreshold)
            }
            host.url = summary.url
            host.location = summary.location
            host.functions = functions
            host.regions = regions
            host.acceptsGateway = gatewayID.map { summary.trustedGateways?.contains($0) ?? false } ?? true
            next[summary.name] = host
        }
        return next
    }

    /// Changes whenever ``update(_:)`` brings a different host list.
    public var generation: UInt64 { state.withLock { $0.generation } }

    public var snapshot: [RoutableHost] { state.withLock { Array($0.hosts.values) }.sorted { $0.name < $1.name } }

    @discardableResult
    public func record(
        _ host: String, _ event: (inout HostHealthStateMachine) -> HostHealthStateMachine.Transition
    )
        -> HostHealthStateMachine.Transition
    {
        let (transition, rebuild) = state.withLock {
            state -> (HostHealthStateMachine.Transition, (hosts: [String: RoutableHost], version: UInt64)?) in
            guard state.hosts[host] != nil else { return (.none, nil) }
            let transition = event(&state.hosts[host]!.health)
            // Failure counts change on every check; only a change of rotation changes the indexes.
            guard transition != .none else { return (transition, nil) }
            state.version &+= 1
            return (transition, (state.hosts, state.version))
        }
        if let rebuild {
            let table = RoutingTable(rebuild.hosts.values)
            // A later change builds (and installs) a table of its own.
            state.withLock { state in
                if state.version == rebuild.version { state.table = table }
            }
        }
        return transition
    }

    /// Up to `limit` healthy hosts that run `function` and may (its `regions`), nearest to `client` first — except
    /// that hosts which recently answered that they are saturated come after all the others (spill-over to the next
    /// nearest). O(log n) in the number of hosts.
    public func candidates(for function: FunctionRef, from client: GeoPoint, limit: Int = 4) -> [Route] {
        let now = ContinuousClock.now
        let (table, saturated) = state.withLock { state in
            (state.table, state.saturated[function])
        }
        let busy = saturated?.filter { $0.value > now }
        guard let busy, !busy.isEmpty else { return table.nearest(function, to: client, limit: limit) }
        let routes = table.nearest(function, to: client, limit: limit + min(busy.count, 32))
        let free = routes.filter { busy[$0.host] == nil }
        return Array((free + routes.filter { busy[$0.host] != nil }).prefix(limit))
    }

    /// Records that `host` answered a call of `function` with its own "saturated" `503`: it is tried after the other
    /// candidates for `duration`.
    public func markSaturated(_ host: String, function: FunctionRef, for duration: Duration = .seconds(1)) {
        let until = ContinuousClock.now + duration
        state.withLock { state in
            let now = ContinuousClock.now
            var entries = state.saturated[function, default: [:]]
            entries = entries.filter { $0.value > now }
            entries[host] = until
            state.saturated[function] = entries
        }
    }

    /// Healthy hosts serving `function`, nearest first (all of them; ``candidates(for:from:limit:)`` is the fast one).
    public func routes(for function: FunctionRef, from client: GeoPoint) -> [Route] {
        HostDirectory.rank(state.withLock { Array($0.hosts.values) }, for: function, from: client)
    }

    /// The nearest healthy host, whatever it serves.
    public func nearestHealthy(to client: GeoPoint) -> RoutableHost? {
        state.withLock { $0.table }.nearestHealthy(to: client)
    }

    /// Whether any host, healthy or not, serves `function`.
    public func isDeployed(_ function: FunctionRef) -> Bool {
        state.withLock { $0.table.deployed.contains(function) }
    }

    static func rank(_ hosts: [RoutableHost], for function: FunctionRef, from client: GeoPoint) -> [Route] {
        hosts.lazy
            .filter { $0.isRoutable && $0.functions.contains(function) && $0.mayRun(function) }
            .map { Route(host: $0.name, url: $0.url, distanceKm: $0.location.distanceKm(to: client)) }
            .sorted { ($0.distanceKm, $0.host) < ($1.distanceKm, $1.host) }
    }
}
