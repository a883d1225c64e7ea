// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

/// Benchmark-only (`Samples/bench/ledger.sh`): `VERGE_BENCH_NO_LEDGER=1 swift build -c release …` builds a host that
/// does not write usage records, to measure what writing them costs. Never deploy such a build: it bills nothing.
let hostSettings: [SwiftSetting] =
    strict + (Context.environment["VERGE_BENCH_NO_LEDGER"] == "1" ? [.define("VERGE_BENCH_NO_LEDGER")] : [])

let package = Package(
    name: "Verge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "verge", targets: ["verge"]),
        .executable(name: "verge-sandbox-exec", targets: ["verge-sandbox-exec"]),
    ],
    dependencies: [
        .package(path: "Runtime/Swift"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        // Core types shared by every component: identities, manifests, geography, errors, usage records.
        .target(
            name: "VergeCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "VergeProtocol", package: "Swift"),
            ],
            swiftSettings: strict
        ),
        // HTTP plumbing on SwiftNIO: the server loop every component uses, the JSON error shape, the client.
        .target(
            name: "VergeHTTP",
            dependencies: [
                "VergeCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Function bundles: manifest validation, deterministic packing, safe unpacking, content hashes.
        .target(
            name: "VergeBundle",
            dependencies: [
                "VergeCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            swiftSettings: strict
        ),
        // The usage ledger: per-call records in SQLite on hosts and in the control plane.
        .target(
            name: "VergeUsage",
            dependencies: [
                "VergeCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // libmaxminddb: IP address → place, from MaxMind DB (.mmdb) files.
        .systemLibrary(
            name: "CMaxMindDB",
            pkgConfig: "libmaxminddb",
            providers: [.apt(["libmaxminddb-dev"])]
        ),
        // Worker processes: spawn, exit and timers on a libuv loop.
        .target(
            name: "VergeSupervisor",
            dependencies: [
                "CLibUV",
                "VergeCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // libseccomp, through a small C shim (its rule API is variadic C).
        .target(
            name: "CVergeSeccomp",
            linkerSettings: [.linkedLibrary("seccomp")]
        ),
        // Runs between the host's fork and bubblewrap: joins the worker's cgroup, stages its paths, drops to its user.
        .executableTarget(name: "verge-sandbox-exec"),
        // The sandbox of a worker: bubblewrap arguments, the seccomp program, cgroups (v2 and v1), sandbox users.
        .target(
            name: "VergeSandbox",
            dependencies: [
                "CVergeSeccomp", "VergeCore", "VergeSupervisor",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // The edge host: the process pool, the worker channel, the HTTP server, bundle cache, sync and shipping.
        .target(
            name: "VergeHost",
            dependencies: [
                "VergeCore", "VergeHTTP", "VergeBundle", "VergeUsage", "VergeSupervisor", "VergeSandbox",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "VergeProtocol", package: "Swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"],
            swiftSettings: hostSettings
        ),
        // The gateway: client location, nearest healthy host, streaming proxy.
        .target(
            name: "VergeGateway",
            dependencies: [
                "CMaxMindDB", "VergeCore", "VergeHTTP",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // The control plane: bundle store, versions, hosts, usage collection, the HTTP API.
        .target(
            name: "VergeControlPlane",
            dependencies: [
                "VergeCore", "VergeHTTP", "VergeBundle", "VergeUsage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["README.md"],
            swiftSettings: strict
        ),
        // Commands of the `verge` executable and the embedded local cluster.
        .target(
            name: "VergeCLI",
            dependencies: [
                "VergeCore", "VergeHTTP", "VergeBundle", "VergeHost", "VergeGateway", "VergeControlPlane",
                "VergeSupervisor", "VergeUsage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "verge", dependencies: ["VergeCLI"], swiftSettings: strict),
        // Route-decision micro-benchmark (Samples/bench/route-decision.sh builds it in release and runs it).
        .executableTarget(
            name: "verge-route-bench",
            dependencies: ["VergeGateway", "VergeCore"],
            path: "Samples/bench/route-decision",
            swiftSettings: strict
        ),
        // Harnesses for tests: a temporary cluster process on port 0, an HTTP client, temporary directories.
        .target(
            name: "VergeTestSupport",
            dependencies: [
                "VergeCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VergeBundleTests",
            dependencies: ["VergeBundle", "VergeCore", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VergeSandboxTests",
            dependencies: [
                "VergeSandbox", "VergeCore", "VergeSupervisor", "VergeTestSupport", "verge-sandbox-exec",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VergeSupervisorTests",
            dependencies: ["VergeSupervisor", "VergeCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VergeUsageTests",
            dependencies: ["VergeUsage", "VergeCore", "VergeTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VergeHostTests",
            dependencies: [
                "VergeHost", "VergeCore", "VergeHTTP",
                .product(name: "VergeProtocol", package: "Swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VergeGatewayTests",
            dependencies: [
                "VergeGateway", "VergeCore", "VergeHTTP", "VergeTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VergeControlPlaneTests",
            dependencies: [
                "VergeControlPlane", "VergeCore", "VergeHTTP", "VergeBundle", "VergeUsage", "VergeTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VergeIntegrationTests",
            dependencies: ["verge", "verge-sandbox-exec", "VergeCore", "VergeTestSupport"],
            swiftSettings: strict
        ),
    ]
)
