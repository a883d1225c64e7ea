// Route-decision micro-benchmark: how long the gateway takes to choose hosts for a call with 10,000 hosts.
// Build and run in release: Samples/bench/route-decision.sh (prints ns per decision).
import Logging
import VergeCore
import VergeGateway

#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments.dropFirst()
let hostCount = arguments.first.flatMap { Int($0) } ?? 10_000
let decisions = arguments.dropFirst().first.flatMap { Int($0) } ?? 1_000_000
/// A point spread evenly over the sphere.
func randomPoint(_ generator: inout SplitMix64) -> GeoPoint {
    GeoPoint(
        asin(Double.random(in: -1...1, using: &generator)) * 180 / .pi,
        Double.random(in: -180...180, using: &generator))
}
var generator = SplitMix64(seed: 42)

/// Ten functions; `hello` runs on every host (the worst case for the index), the others on a tenth each.
let hello = FunctionRef(tenant: "default", name: "hello")
let summaries = (0..<hostCount).map { index in
    let functions = [hello] + [FunctionRef(tenant: "default", name: "f\(index % 9)")]
    return HostSummary(
        name: "host-\(index)", url: "http://10.0.\(index / 256).\(index % 256):8080", location: randomPoint(&generator),
        healthy: true, lastSeenMs: 1, warmWorkers: 0, unshippedRecords: 0,
        functions: functions.map {
            HostStatus.FunctionStatus(
                tenant: $0.tenant, name: $0.name, version: "v1", warmWorkers: 0, idleWorkers: 0, busyWorkers: 0,
                queuedCalls: 0, workerPIDs: [])
        }, isolation: .sandbox)
}
let clients = (0..<4096).map { _ in randomPoint(&generator) }
let directory = HostDirectory(unhealthyThreshold: 2)
let clock = ContinuousClock()
let buildStart = clock.now
directory.update(summaries)
let buildTime = clock.now - buildStart

func nanoseconds(_ duration: Duration, per count: Int) -> Double {
    let components = duration.components
    return (Double(components.seconds) * 1e9 + Double(components.attoseconds) / 1e9) / Double(count)
}

func report(_ label: String, _ elapsed: Duration, count: Int, checksum: Int) {
    let perDecision = Int(nanoseconds(elapsed, per: count).rounded())
    print("\(label): \(perDecision) ns/decision over \(count) decisions (checksum \(checksum & 0xff))")
}

func measure(_ label: String, count: Int, _ body: (Int) -> Int) {
    var checksum = 0
    for index in 0..<min(count, 10_000) { checksum &+= body(index) }  // warm-up
    let start = clock.now
    for index in 0..<count { checksum &+= body(index) }
    report(label, clock.now - start, count: count, checksum: checksum)
}

print("hosts: \(hostCount), index build: \(buildTime)")
measure("candidates, function on every host", count: decisions) { index in
    directory.candidates(for: hello, from: clients[index & 4095]).count
}
let f3 = FunctionRef(tenant: "default", name: "f3")
measure("candidates, function on a ninth of the hosts", count: decisions) { index in
    directory.candidates(for: f3, from: clients[index & 4095]).count
}
// The whole decision a call makes: RouteResolver.routes (index query, nearest healthy host, deployed check). Run
// from a nonisolated function, as the proxy calls it, so the loop does not hop to and from the main actor.
func resolverLoop(
    _ resolver: RouteResolver, _ function: FunctionRef, _ clients: [GeoPoint], _ count: Int
) async
    -> (Duration, Int)
{
    let clock = ContinuousClock()
    var checksum = 0
    let start = clock.now
    for index in 0..<count {
        checksum &+= await resolver.routes(for: function, from: clients[index & 4095]) { _ in }.count
    }
    return (clock.now - start, checksum)
}
let resolver = RouteResolver(directory: directory)
_ = await resolverLoop(resolver, hello, clients, 10_000)
let (elapsed, sum) = await resolverLoop(resolver, hello, clients, decisions)
report("RouteResolver.routes, the whole decision", elapsed, count: decisions, checksum: sum)
measure("nearestHealthy alone", count: decisions) { index in
    directory.nearestHealthy(to: clients[index & 4095])?.name.utf8.count ?? 0
}
measure("baseline: scan and sort every host (routes(for:from:))", count: max(100, decisions / 1000)) { index in
    directory.routes(for: hello, from: clients[index & 4095]).count
}

// Locating a client: the country-level fallback's lookup (and its load time), when tor-geoipdb is installed.
let loadStart = clock.now
if let database = try? TorGeoIPDatabase() {
    print("tor-geoipdb: \(database.rangeCount) ranges loaded in \(clock.now - loadStart)")
    let addresses = (0..<4096).map { _ in
        IPAddress(
            "\(UInt8.random(in: 1...223, using: &generator)).\(UInt8.random(in: 0...255, using: &generator)).0.1")!
    }
    let texts = addresses.map(\.description)
    measure("client address parse and tor-geoipdb lookup", count: decisions) { index in
        IPAddress(texts[index & 4095]).flatMap(database.lookup) == nil ? 0 : 1
    }
}

// A MaxMind city lookup (libmaxminddb), in the database the script generates.
if let path = arguments.dropFirst(2).first {
    let database = try MaxMindDatabase(path: path)
    let addresses = (0..<4096).map { index in
        IPAddress("\(1 + (index * 7) % 78).\(UInt8.random(in: 0...255, using: &generator)).3.4")!
    }
    measure("MaxMind city lookup (\(database.databaseType))", count: decisions) { index in
        database.lookup(addresses[index & 4095])?.location == nil ? 0 : 1
    }
}
