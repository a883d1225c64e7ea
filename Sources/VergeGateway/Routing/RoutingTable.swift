import VergeCore

/// An immutable view of the hosts for routing decisions: per function, a spatial index of the routable hosts (healthy,
/// and trusting this gateway) that run it and may (by the function's `regions`); and one of every routable host.
/// Rebuilt when the host list or a host's health changes, never on the request path.
final class RoutingTable: Sendable {
    /// Hosts sorted by name; an index's ids are positions in this array, so distance ties go to the smaller name.
    let hosts: [RoutableHost]
    let byFunction: [FunctionRef: SphereIndex]
    let healthy: SphereIndex
    let deployed: Set<FunctionRef>

    init(_ unsorted: some Sequence<RoutableHost>) {
        let hosts = unsorted.sorted { $0.name < $1.name }
        var pointsByFunction: [FunctionRef: [SphereIndex.Point]] = [:]
        var healthyPoints: [SphereIndex.Point] = []
        var deployed = Set<FunctionRef>()
        for (index, host) in hosts.enumerated() {
            deployed.formUnion(host.functions)
            guard host.isRoutable else { continue }
            let vector = SphereIndex.unitVector(host.location)
            let point = SphereIndex.Point(x: vector.x, y: vector.y, z: vector.z, id: Int32(index))
            healthyPoints.append(point)
            for function in host.functions where host.mayRun(function) {
                pointsByFunction[function, default: []].append(point)
            }
        }
        self.hosts = hosts
        self.byFunction = pointsByFunction.mapValues(SphereIndex.init)
        self.healthy = SphereIndex(healthyPoints)
        self.deployed = deployed
    }

    /// Up to `limit` healthy hosts that may run `function`, nearest to `client` first.
    func nearest(_ function: FunctionRef, to client: GeoPoint, limit: Int) -> [Route] {
        guard let index = byFunction[function] else { return [] }
        return index.nearest(to: SphereIndex.unitVector(client), k: limit).map { _, id in
            let host = hosts[Int(id)]
            return Route(host: host.name, url: host.url, distanceKm: host.location.distanceKm(to: client))
        }
    }

    /// The nearest healthy host, whatever it runs.
    func nearestHealthy(to client: GeoPoint) -> RoutableHost? {
        healthy.nearest(to: SphereIndex.unitVector(client), k: 1).first.map { hosts[Int($0.id)] }
    }
}

extension RoutableHost {
    /// Healthy, and it recognises this gateway's proof: calls may go there.
    public var isRoutable: Bool { health.isHealthy && acceptsGateway }

    /// Whether the function's `regions` (as this host reports them) allow it to run here.
    func mayRun(_ function: FunctionRef) -> Bool {
        guard let pinned = regions[function], !pinned.isEmpty else { return true }
        return pinned.contains { HostRegion.contains(host: name, region: $0) }
    }
}
