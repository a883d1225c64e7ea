import Testing
import VergeCore

@testable import VergeGateway

@Suite struct HostDirectoryTests {
    static let paris = GeoPoint(48.8566, 2.3522)
    static let hello = FunctionRef(tenant: "acme", name: "hello")
    static let other = FunctionRef(tenant: "acme", name: "other")

    private static func summary(
        _ name: String, _ location: GeoPoint, serves functions: [FunctionRef] = [hello], url: String? = nil
    ) -> HostSummary {
        HostSummary(
            name: name, url: url ?? "http://\(name).internal:8080", location: location, healthy: true, lastSeenMs: 10,
            warmWorkers: 0, unshippedRecords: 0,
            functions: functions.map {
                HostStatus.FunctionStatus(
                    tenant: $0.tenant, name: $0.name, version: "v1", warmWorkers: 0, idleWorkers: 0, busyWorkers: 0,
                    queuedCalls: 0, workerPIDs: []
                )
            }, isolation: .sandbox
        )
    }

    static let hosts = [
        summary("sin", GeoPoint(1.3521, 103.8198)),
        summary("fra", GeoPoint(50.1109, 8.6821)),
        summary("lon", GeoPoint(51.5074, -0.1278), serves: [other]),
        summary("nyc", GeoPoint(40.7128, -74.0060)),
    ]

    private static func directory(_ summaries: [HostSummary] = hosts, threshold: Int = 2) -> HostDirectory {
        let directory = HostDirectory(unhealthyThreshold: threshold)
        directory.update(summaries)
        return directory
    }

    @Test func ranksHostsThatRunTheFunctionNearestFirst() {
        let routes = Self.directory().routes(for: Self.hello, from: Self.paris)
        #expect(routes.map(\.host) == ["fra", "nyc", "sin"])
        #expect(
            routes.map(\.url) == ["http://fra.internal:8080", "http://nyc.internal:8080", "http://sin.internal:8080"])
        #expect(abs(routes[0].distanceKm - 478) < 5)
        #expect(routes.map(\.distanceKm) == routes.map(\.distanceKm).sorted())
    }

    @Test func hostsNotServingTheFunctionAreExcluded() {
        let directory = Self.directory()
        #expect(directory.routes(for: Self.other, from: Self.paris).map(\.host) == ["lon"])
        #expect(directory.routes(for: FunctionRef(tenant: "acme", name: "missing"), from: Self.paris).isEmpty)
        // Same name, other tenant.
        #expect(directory.routes(for: FunctionRef(tenant: "globex", name: "hello"), from: Self.paris).isEmpty)
    }

    @Test func unhealthyHostsAreExcluded() {
        let directory = Self.directory()
        #expect(directory.record("fra") { $0.connectionFailed() } == .becameUnhealthy)
        #expect(directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["nyc", "sin"])
        #expect(directory.record("fra") { $0.checkSucceeded() } == .becameHealthy)
        #expect(directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["fra", "nyc", "sin"])
    }

    /// With its credential id, the gateway routes only to hosts that report holding its proof; the others would
    /// refuse its calls. A host that learns the proof becomes routable at the next update.
    @Test func hostsThatDoNotHoldTheGatewaysProofAreNotRouted() {
        var summaries = Self.hosts
        for index in summaries.indices { summaries[index].trustedGateways = ["0123456789abcdef"] }
        summaries[summaries.firstIndex { $0.name == "fra" }!].trustedGateways = ["fedcba9876543210"]
        summaries[summaries.firstIndex { $0.name == "nyc" }!].trustedGateways = nil
        let directory = HostDirectory(unhealthyThreshold: 2)
        directory.update(summaries, gatewayID: "0123456789abcdef")
        #expect(directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["sin"])
        #expect(directory.candidates(for: Self.hello, from: Self.paris).map(\.host) == ["sin"])
        #expect(directory.nearestHealthy(to: Self.paris)?.name == "lon")
        // Still known to serve the function: a call gets "no healthy host", not "no such function".
        #expect(directory.isDeployed(Self.hello))
        summaries[summaries.firstIndex { $0.name == "fra" }!].trustedGateways = [
            "fedcba9876543210", "0123456789abcdef",
        ]
        directory.update(summaries, gatewayID: "0123456789abcdef")
        #expect(directory.candidates(for: Self.hello, from: Self.paris).map(\.host) == ["fra", "sin"])
        // Without a gateway id (a directory fed by hand), every host counts.
        directory.update(summaries)
        #expect(directory.candidates(for: Self.hello, from: Self.paris).map(\.host) == ["fra", "nyc", "sin"])
    }

    @Test func failedChecksTakeAHostOutAtTheThreshold() {
        let directory = Self.directory(threshold: 2)
        #expect(directory.record("nyc") { $0.checkFailed() } == .none)
        #expect(directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["fra", "nyc", "sin"])
        #expect(directory.record("nyc") { $0.checkFailed() } == .becameUnhealthy)
        #expect(directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["fra", "sin"])
    }

    @Test func deployedEvenWhenNoHostIsHealthy() {
        let directory = Self.directory()
        for host in ["fra", "nyc", "sin"] { directory.record(host) { $0.connectionFailed() } }
        #expect(directory.routes(for: Self.hello, from: Self.paris).isEmpty)
        #expect(directory.isDeployed(Self.hello))
        #expect(!directory.isDeployed(FunctionRef(tenant: "acme", name: "missing")))
    }

    @Test func tiesAreBrokenByName() {
        let here = GeoPoint(45, 5)
        let directory = Self.directory([
            Self.summary("charlie", here), Self.summary("alpha", here), Self.summary("bravo", here),
            Self.summary("zulu", GeoPoint(44, 5)),
        ])
        #expect(
            directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["alpha", "bravo", "charlie", "zulu"])
        #expect(
            directory.routes(for: Self.hello, from: GeoPoint(44, 5)).map(\.host) == [
                "zulu", "alpha", "bravo", "charlie",
            ])
    }

    @Test func rankingIsAPureFunctionOfTheHosts() {
        var fra = RoutableHost(
            name: "fra", url: "http://fra", location: GeoPoint(50.1109, 8.6821), functions: [Self.hello],
            health: HostHealthStateMachine(unhealthyThreshold: 1)
        )
        let mad = RoutableHost(
            name: "mad", url: "http://mad", location: GeoPoint(40.4168, -3.7038), functions: [Self.hello],
            health: HostHealthStateMachine(unhealthyThreshold: 1)
        )
        #expect(HostDirectory.rank([mad, fra], for: Self.hello, from: Self.paris).map(\.host) == ["fra", "mad"])
        #expect(
            HostDirectory.rank([fra, mad], for: Self.hello, from: GeoPoint(38.7223, -9.1393)).map(\.host) == [
                "mad", "fra",
            ])
        _ = fra.health.checkFailed()
        #expect(HostDirectory.rank([mad, fra], for: Self.hello, from: Self.paris).map(\.host) == ["mad"])
        #expect(HostDirectory.rank([], for: Self.hello, from: Self.paris).isEmpty)
    }

    @Test func updateKeepsTheHealthOfKnownHosts() {
        let directory = Self.directory()
        directory.record("fra") { $0.connectionFailed() }
        directory.update(Self.hosts)
        #expect(directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["nyc", "sin"])
        let fra = directory.snapshot.first { $0.name == "fra" }
        #expect(fra?.health.isHealthy == false)
    }

    @Test func updateResetsHealthWhenAHostMoves() {
        let directory = Self.directory()
        directory.record("fra") { $0.connectionFailed() }
        var moved = Self.hosts
        moved[1] = Self.summary("fra", GeoPoint(50.1109, 8.6821), url: "http://fra-2.internal:8080")
        directory.update(moved)
        let routes = directory.routes(for: Self.hello, from: Self.paris)
        #expect(routes.map(\.host) == ["fra", "nyc", "sin"])
        #expect(routes.first?.url == "http://fra-2.internal:8080")
    }

    @Test func updateReplacesLocationsFunctionsAndTheHostList() {
        let directory = Self.directory()
        directory.record("nyc") { $0.connectionFailed() }
        directory.update([
            Self.summary("fra", GeoPoint(50.1109, 8.6821), serves: [Self.other]),
            Self.summary("sin", GeoPoint(48.86, 2.35)),
        ])
        #expect(directory.snapshot.map(\.name) == ["fra", "sin"])
        #expect(directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["sin"])
        #expect(directory.routes(for: Self.other, from: Self.paris).map(\.host) == ["fra"])
        // A host that left and came back starts healthy; recording for a host no longer listed does nothing.
        #expect(directory.record("nyc") { $0.connectionFailed() } == .none)
        directory.update(Self.hosts)
        #expect(directory.routes(for: Self.hello, from: Self.paris).map(\.host) == ["fra", "nyc", "sin"])
    }
}
