import Synchronization
import Testing
import VergeCore

@testable import VergeGateway

/// When a call may wait for a fresher host list, and how many control-plane calls a burst can cause.
@Suite struct RouteResolverTests {
    static let hello = FunctionRef(tenant: "acme", name: "hello")
    static let paris = GeoPoint(48.85, 2.35)

    static func summary(_ name: String, _ location: GeoPoint, serves: [FunctionRef]) -> HostSummary {
        HostSummary(
            name: name, url: "http://\(name)", location: location, healthy: true, lastSeenMs: 1, warmWorkers: 0,
            unshippedRecords: 0,
            functions: serves.map {
                HostStatus.FunctionStatus(
                    tenant: $0.tenant, name: $0.name, version: "v1", warmWorkers: 0, idleWorkers: 0, busyWorkers: 0,
                    queuedCalls: 0, workerPIDs: [])
            }, isolation: .sandbox)
    }

    /// A control plane that counts how often it is asked, behind the gateway's real coalescing.
    final class FakeControlPlane: Sendable {
        let calls = Atomic<Int>(0)
        let coordinator = RefreshCoordinator(minimumSpacing: .milliseconds(50))
        let directory: HostDirectory
        let hosts: Mutex<[HostSummary]>

        init(directory: HostDirectory, hosts: [HostSummary]) {
            self.directory = directory
            self.hosts = Mutex(hosts)
        }

        func refresh(after moment: ContinuousClock.Instant) async {
            await coordinator.refresh(after: moment) {
                calls.add(1, ordering: .relaxed)
                try? await Task.sleep(for: .milliseconds(5))
                directory.update(hosts.withLock { $0 })
            }
        }
    }

    @Test func aBurstForUnknownNamesCostsOneControlPlaneCall() async {
        let directory = HostDirectory(unhealthyThreshold: 2)
        let hosts = [Self.summary("fra", GeoPoint(50.11, 8.68), serves: [Self.hello])]
        directory.update(hosts)
        let controlPlane = FakeControlPlane(directory: directory, hosts: hosts)
        let resolver = RouteResolver(directory: directory)
        let names = (0..<20).map { FunctionRef(tenant: "acme", name: "ghost-\($0)") }
        await withDiscardingTaskGroup { group in
            for index in 0..<400 {
                group.addTask {
                    let routes = await resolver.routes(for: names[index % names.count], from: Self.paris) {
                        await controlPlane.refresh(after: $0)
                    }
                    #expect(routes.isEmpty)
                }
            }
        }
        let first = controlPlane.calls.load(ordering: .relaxed)
        // Calls arriving while a refresh is in flight need one that starts after them: at most a second one.
        #expect(first >= 1 && first <= 2, "control-plane calls: \(first)")
        // Now every name is known to be unknown: no call at all.
        for name in names {
            #expect(
                await resolver.routes(for: name, from: Self.paris) { await controlPlane.refresh(after: $0) }.isEmpty)
        }
        #expect(controlPlane.calls.load(ordering: .relaxed) == first)
    }

    @Test func aChangedHostListEndsTheNegativeCache() async {
        let directory = HostDirectory(unhealthyThreshold: 2)
        let ghost = FunctionRef(tenant: "acme", name: "ghost")
        directory.update([Self.summary("fra", GeoPoint(50.11, 8.68), serves: [Self.hello])])
        let controlPlane = FakeControlPlane(directory: directory, hosts: [])
        let resolver = RouteResolver(directory: directory, negativeTTL: .seconds(60))
        controlPlane.hosts.withLock { $0 = [Self.summary("fra", GeoPoint(50.11, 8.68), serves: [Self.hello])] }
        #expect(await resolver.routes(for: ghost, from: Self.paris) { await controlPlane.refresh(after: $0) }.isEmpty)
        #expect(controlPlane.calls.load(ordering: .relaxed) == 1)
        // The periodic refresh brings the deploy: the next call routes without waiting.
        directory.update([Self.summary("fra", GeoPoint(50.11, 8.68), serves: [Self.hello, ghost])])
        let routes = await resolver.routes(for: ghost, from: Self.paris) { await controlPlane.refresh(after: $0) }
        #expect(routes.map(\.host) == ["fra"])
        #expect(controlPlane.calls.load(ordering: .relaxed) == 1)
    }

    @Test func whenTheNearestHostLacksTheFunctionOneCallPerIntervalAsksAgain() async {
        let directory = HostDirectory(unhealthyThreshold: 2)
        let hosts = [
            Self.summary("fra", GeoPoint(50.11, 8.68), serves: []),
            Self.summary("sin", GeoPoint(1.35, 103.82), serves: [Self.hello]),
        ]
        directory.update(hosts)
        let controlPlane = FakeControlPlane(directory: directory, hosts: hosts)
        let resolver = RouteResolver(directory: directory, recheckInterval: .seconds(60))
        for _ in 0..<50 {
            let routes = await resolver.routes(for: Self.hello, from: Self.paris) {
                await controlPlane.refresh(after: $0)
            }
            #expect(routes.map(\.host) == ["sin"])
        }
        #expect(controlPlane.calls.load(ordering: .relaxed) == 1)
        // When the nearest host runs it, no call waits at all.
        #expect(
            await resolver.routes(for: Self.hello, from: GeoPoint(1.3, 103.8)) { _ in Issue.record("waited") }
                .map(\.host) == ["sin"])
    }

    @Test func refreshesStartAtLeastTheSpacingApart() async {
        let coordinator = RefreshCoordinator(minimumSpacing: .milliseconds(200))
        let starts = Mutex<[ContinuousClock.Instant]>([])
        for _ in 0..<3 {
            await coordinator.refresh(after: .now) { starts.withLock { $0.append(.now) } }
        }
        let recorded = starts.withLock { $0 }
        #expect(recorded.count == 3)
        for (earlier, later) in zip(recorded, recorded.dropFirst()) {
            #expect(later - earlier >= .milliseconds(195))
        }
    }
}
