import Foundation

/// Locations in the checkout and the build, for tests.
public enum Paths {
    /// The repository root (this file is `Sources/VergeTestSupport/Paths.swift`).
    public static let repository: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }()

    /// The `verge` executable built next to the test bundle, or `$VERGE_BIN`.
    public static let vergeExecutable: String = {
        if let explicit = ProcessInfo.processInfo.environment["VERGE_BIN"] { return explicit }
        let me =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("verge").path
    }()

    /// A temporary `XDG_CONFIG_HOME` for commands that name no other, so tests never touch the user's config.
    public static let testConfigHome: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "verge-test-config-\(getpid())"
        ).path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    /// The environment for a child process: the test process's own, `XDG_CONFIG_HOME` set to
    /// ``testConfigHome``, `VERGE_TOKEN` and `VERGE_JOIN_TOKEN` removed, then `extra` on top.
    public static func testEnvironment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = testConfigHome
        environment["VERGE_TOKEN"] = nil
        environment["VERGE_JOIN_TOKEN"] = nil
        environment.merge(extra) { _, new in new }
        return environment
    }

    public static func sampleFunction(_ name: String) -> String { repository + "/Functions/" + name }
    public static func fixtureFunction(_ name: String) -> String { repository + "/Tests/Fixtures/functions/" + name }
    public static func hostileFunction(_ name: String) -> String { repository + "/Tests/Fixtures/hostile/" + name }
}

/// A directory under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "verge-test") throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Copies a directory into this one under `name` and returns the copy's path.
    public func copy(_ source: String, as name: String) throws -> String {
        let target = path + "/" + name
        try FileManager.default.copyItem(atPath: source, toPath: target)
        return target
    }
}
