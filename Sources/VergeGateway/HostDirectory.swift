import Synchronization
import VergeCore

/// One host as the gateway routes to it.
public struct RoutableHost: Sendable, Equatable {
    public var name: String
    public var url: String
    public var location: GeoPoint
    /// Functions (tenant/name) the host reports it serves.
    public var functions: Set<FunctionRef>
    public var health: HostHealthStateMachine

    public init(
        name: String, url: String, location: GeoPoint, functions: Set<FunctionRef>, health: HostHealthStateMachine
    ) {
        self.name = name
        self.url = url
        self.location = location
        self.functions = functions
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

/// The gateway's view of the hosts: the list comes from the control plane, health from the gateway's own checks.
public final class HostDirectory: Sendable {
    private let hosts = Mutex<[String: RoutableHost]>([:])

    private let unhealthyThreshold: Int

    public init(unhealthyThreshold: Int) {
        self.unhealthyThreshold = unhealthyThreshold
    }

    /// Replaces the host list, keeping the health of hosts already known.
    public func update(_ summaries: [HostSummary]) {
        hosts.withLock { hosts in
            var next: [String: RoutableHost] = [:]
            for summary in summaries {
                let functions = Set(summary.functions.map { FunctionRef(tenant: $0.tenant, name: $0.name) })
                var host =
                    hosts[summary.name]
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
                next[summary.name] = host
            }
            hosts = next
        }
    }

    public var snapshot: [RoutableHost] { hosts.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

    @discardableResult
    public func record(
        _ host: String, _ event: (inout HostHealthStateMachine) -> HostHealthStateMachine.Transition
    )
        -> HostHealthStateMachine.Transition
    {
        hosts.withLock { hosts in
            guard hosts[host] != nil else { return .none }
            return event(&hosts[host]!.health)
        }
    }

    /// Healthy hosts serving `function`, nearest first.
    public func routes(for function: FunctionRef, from client: GeoPoint) -> [Route] {
        HostDirectory.rank(hosts.withLock { Array($0.values) }, for: function, from: client)
    }

    /// The nearest healthy host, whatever it serves.
    public func nearestHealthy(to client: GeoPoint) -> RoutableHost? {
        hosts.withLock { Array($0.values) }
            .filter(\.health.isHealthy)
            .min { ($0.location.distanceKm(to: client), $0.name) < ($1.location.distanceKm(to: client), $1.name) }
    }

    /// Whether any host, healthy or not, serves `function`.
    public func isDeployed(_ function: FunctionRef) -> Bool {
        hosts.withLock { $0.values.contains { $0.functions.contains(function) } }
    }

    static func rank(_ hosts: [RoutableHost], for function: FunctionRef, from client: GeoPoint) -> [Route] {
        hosts.lazy
            .filter { $0.health.isHealthy && $0.functions.contains(function) }
            .map { Route(host: $0.name, url: $0.url, distanceKm: $0.location.distanceKm(to: client)) }
            .sorted { ($0.distanceKm, $0.host) < ($1.distanceKm, $1.host) }
    }
}
