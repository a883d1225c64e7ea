// swift-tools-version:6.1
import PackageDescription

// The code that runs inside a Swift worker. It depends on nothing but the standard library and
// FoundationEssentials so function binaries stay small and start fast.
let package = Package(
    name: "Swift",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "VergeProtocol", targets: ["VergeProtocol"]),
        .library(name: "VergeRuntime", targets: ["VergeRuntime"]),
    ],
    targets: [
        // The worker protocol's frames and their codec, shared by the host and the runtime.
        .target(name: "VergeProtocol"),
        // The in-worker runtime: handshake, request loop, handler API.
        .target(name: "VergeRuntime", dependencies: ["VergeProtocol"]),
        .testTarget(name: "VergeProtocolTests", dependencies: ["VergeProtocol"]),
    ]
)
