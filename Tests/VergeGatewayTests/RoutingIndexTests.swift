import Foundation
import Testing
import VergeCore
import VergeTestSupport

@testable import VergeGateway

/// The spatial index must agree with a plain scan-and-sort, whatever the hosts.
@Suite struct RoutingIndexTests {
    static let hello = FunctionRef(tenant: "acme", name: "hello")
    static let other = FunctionRef(tenant: "acme", name: "other")

    static func summary(
        _ name: String, _ location: GeoPoint, serves functions: [FunctionRef], regions: [String]? = nil
    ) -> HostSummary {
        HostSummary(
            name: name, url: "http://\(name).internal", location: location, healthy: true, lastSeenMs: 1,
            warmWorkers: 0, unshippedRecords: 0,
            functions: functions.map {
                HostStatus.FunctionStatus(
                    tenant: $0.tenant, name: $0.name, version: "v1", warmWorkers: 0, idleWorkers: 0, busyWorkers: 0,
                    queuedCalls: 0, workerPIDs: [], regions: regions)
            }, isolation: .sandbox)
    }

    /// A point spread evenly over the sphere (not crowded at the poles), or clustered near a few cities.
    static func randomPoint(_ generator: inout SplitMix64, clustered: Bool) -> GeoPoint {
        if clustered {
            let cities = [(50.11, 8.68), (1.35, 103.82), (39.04, -77.49), (-33.87, 151.21), (0, 179.99)]
            let city = cities[Int.random(in: 0..<cities.count, using: &generator)]
            return GeoPoint(
                min(90, max(-90, city.0 + Double.random(in: -0.5...0.5, using: &generator))),
                (city.1 + Double.random(in: -0.5...0.5, using: &generator)).truncatingRemainder(dividingBy: 180))
        }
        let latitude = asin(Double.random(in: -1...1, using: &generator)) * 180 / .pi
        return GeoPoint(latitude, Double.random(in: -180...180, using: &generator))
    }

    @Test(arguments: [(1 as UInt64, false), (3, true)])
    func theIndexAgreesWithAScan(seed: UInt64, clustered: Bool) async throws {
        // Thousands of comparisons: on a thread of its own, so the other tests' tasks are not starved meanwhile.
        let mismatches = try await blocking { Self.compareIndexWithScan(seed: seed, clustered: clustered) }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    static func compareIndexWithScan(seed: UInt64, clustered: Bool) -> [String] {
        var generator = SplitMix64(seed: seed)
        var summaries: [HostSummary] = []
        for index in 0..<400 {
            let serves: [FunctionRef] =
                Int.random(in: 0..<3, using: &generator) == 0 ? [Self.other] : [Self.hello, Self.other]
            summaries.append(
                Self.summary("h\(index)", Self.randomPoint(&generator, clustered: clustered), serves: serves))
        }
        // A few hosts at exactly the same place: ties go to the smaller name.
        let shared = GeoPoint(48.85, 2.35)
        for name in ["tie-c", "tie-a", "tie-b"] { summaries.append(Self.summary(name, shared, serves: [Self.hello])) }
        let directory = HostDirectory(unhealthyThreshold: 1)
        directory.update(summaries)
        for index in stride(from: 0, to: 400, by: 7) { directory.record("h\(index)") { $0.connectionFailed() } }

        let hosts = directory.snapshot
        let healthy = hosts.filter(\.health.isHealthy)
        var clients = (0..<60).map { _ in Self.randomPoint(&generator, clustered: clustered) }
        clients += [shared, GeoPoint(90, 0), GeoPoint(-90, 0), GeoPoint(0, 180), GeoPoint(0, -180)]
        var mismatches: [String] = []
        for client in clients {
            let scanned = HostDirectory.rank(hosts, for: Self.hello, from: client)
            for limit in [1, 4] {
                let indexed = directory.candidates(for: Self.hello, from: client, limit: limit)
                if indexed.map(\.host) != scanned.prefix(limit).map(\.host) {
                    mismatches.append("client \(client): index \(indexed.map(\.host)), scan \(scanned.prefix(limit))")
                }
            }
            let nearest = healthy.min {
                ($0.location.distanceKm(to: client), $0.name) < ($1.location.distanceKm(to: client), $1.name)
            }
            if directory.nearestHealthy(to: client)?.name != nearest?.name {
                mismatches.append("client \(client): nearest healthy differs")
            }
        }
        return mismatches
    }

    @Test func regionsPinAFunctionToItsHosts() {
        let directory = HostDirectory(unhealthyThreshold: 1)
        directory.update([
            Self.summary("fra", GeoPoint(50.11, 8.68), serves: [Self.hello], regions: ["iad", "fra"]),
            Self.summary("fra-2", GeoPoint(52.0, 5.0), serves: [Self.hello], regions: ["iad", "fra"]),
            Self.summary("frankfurt", GeoPoint(50.11, 8.68), serves: [Self.hello], regions: ["iad", "fra"]),
            Self.summary("iad", GeoPoint(39.04, -77.49), serves: [Self.hello], regions: ["iad", "fra"]),
            Self.summary("sin", GeoPoint(1.35, 103.82), serves: [Self.hello], regions: ["iad", "fra"]),
            Self.summary("sin-x", GeoPoint(1.35, 103.82), serves: [Self.other]),
        ])
        let singapore = GeoPoint(1.29, 103.85)
        #expect(directory.candidates(for: Self.hello, from: singapore).map(\.host) == ["fra", "fra-2", "iad"])
        #expect(directory.routes(for: Self.hello, from: singapore).map(\.host) == ["fra", "fra-2", "iad"])
        #expect(directory.candidates(for: Self.other, from: singapore).map(\.host) == ["sin-x"])
        #expect(directory.isDeployed(Self.hello))
    }

    @Test(arguments: [
        ("fra", "fra", true), ("fra-2", "fra", true), ("fra-b-1", "fra", true), ("frankfurt", "fra", false),
        ("fr", "fra", false), ("iad", "fra", false), ("fra", "fra-2", false),
    ])
    func hostRegions(host: String, region: String, expected: Bool) {
        #expect(HostRegion.contains(host: host, region: region) == expected)
    }

    @Test func aSaturatedHostSpillsOverToTheNextNearest() {
        let directory = HostDirectory(unhealthyThreshold: 1)
        directory.update([
            Self.summary("fra", GeoPoint(50.11, 8.68), serves: [Self.hello]),
            Self.summary("lon", GeoPoint(51.51, -0.13), serves: [Self.hello]),
            Self.summary("iad", GeoPoint(39.04, -77.49), serves: [Self.hello]),
        ])
        let paris = GeoPoint(48.85, 2.35)
        #expect(directory.candidates(for: Self.hello, from: paris).map(\.host) == ["lon", "fra", "iad"])
        directory.markSaturated("lon", function: Self.hello, for: .seconds(60))
        #expect(directory.candidates(for: Self.hello, from: paris).map(\.host) == ["fra", "iad", "lon"])
        #expect(directory.candidates(for: Self.hello, from: paris, limit: 1).map(\.host) == ["fra"])
        // Only for that function, and only for a while.
        #expect(directory.candidates(for: Self.other, from: paris).isEmpty)
        directory.markSaturated("fra", function: Self.hello, for: .zero)
        #expect(directory.candidates(for: Self.hello, from: paris).map(\.host) == ["fra", "iad", "lon"])
    }

    @Test func concurrentListAndHealthChangesLeaveATableThatMatchesTheHosts() async {
        let directory = HostDirectory(unhealthyThreshold: 1)
        var generator = SplitMix64(seed: 7)
        let lists: [[HostSummary]] = (0..<3).map { round in
            (0..<60).map { index in
                Self.summary(
                    "h\(index)", Self.randomPoint(&generator, clustered: false),
                    serves: (index + round) % 3 == 0 ? [Self.other] : [Self.hello])
            }
        }
        directory.update(lists[0])
        // Real threads (not the cooperative pool, which other tests need meanwhile) race list updates against
        // health transitions.
        await withDiscardingTaskGroup { group in
            group.addTask {
                _ = try? await blocking {
                    for iteration in 0..<100 { directory.update(lists[iteration % 3]) }
                }
            }
            for worker in 0..<3 {
                group.addTask {
                    _ = try? await blocking {
                        for iteration in 0..<100 {
                            let host = "h\((iteration * 7 + worker * 13) % 60)"
                            directory.record(host) {
                                iteration % 2 == 0 ? $0.connectionFailed() : $0.checkSucceeded()
                            }
                        }
                    }
                }
            }
        }
        for client in [GeoPoint(48.85, 2.35), GeoPoint(1.3, 103.8), GeoPoint(-33.9, 151.2), GeoPoint(40.7, -74)] {
            #expect(
                directory.candidates(for: Self.hello, from: client, limit: 5).map(\.host)
                    == directory.routes(for: Self.hello, from: client).prefix(5).map(\.host))
        }
    }

    @Test func anUnchangedListKeepsItsTable() {
        let directory = HostDirectory(unhealthyThreshold: 2)
        let hosts = [Self.summary("fra", GeoPoint(50.11, 8.68), serves: [Self.hello])]
        directory.update(hosts)
        #expect(directory.record("fra") { $0.checkFailed() } == .none)
        directory.update(hosts)
        #expect(directory.snapshot.first?.health.consecutiveFailures == 1)
        #expect(directory.record("fra") { $0.checkFailed() } == .becameUnhealthy)
        #expect(directory.candidates(for: Self.hello, from: GeoPoint(50, 8)).isEmpty)
        #expect(directory.nearestHealthy(to: GeoPoint(50, 8)) == nil)
    }
}
