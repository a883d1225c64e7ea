// swift-tools-version:6.1
import PackageDescription

// The geo greeting of Functions/hello, as a Swift function. The deployed bundle holds the release binary at
// bin/hello-swift next to verge.json.
let package = Package(
    name: "hello-swift",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../../Runtime/Swift")
    ],
    targets: [
        .executableTarget(
            name: "hello-swift",
            dependencies: [.product(name: "VergeRuntime", package: "Swift")]
        )
    ]
)
