import Foundation
import Logging
import NIOHTTP1
import ServiceLifecycle
import VergeBundle
import VergeCore
import VergeHTTP
import VergeTestSupport

@testable import VergeControlPlane

/// A real control plane on 127.0.0.1 port 0 with its own SQLite file in a temporary directory.
struct ControlPlaneHarness {
    let controlPlane: ControlPlane
    let url: String
    let directory: TemporaryDirectory
    /// The admin token the control plane created on its first start.
    let admin: String

    var store: ControlPlaneStore { controlPlane.store }

    /// Runs `body` with a fresh control plane, shutting it down and removing its data afterwards.
    static func with<T>(_ body: (ControlPlaneHarness) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "verge-control-plane")
        defer { directory.remove() }
        var configuration = ControlPlaneConfiguration(dataDirectory: directory.path + "/control")
        configuration.bind = BindAddress(host: "127.0.0.1", port: 0)
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let controlPlane = try ControlPlane(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [controlPlane], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                let url = await controlPlane.listenAddress.url()
                let admin = try String(contentsOfFile: controlPlane.adminTokenPath, encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let result = try await body(
                    ControlPlaneHarness(controlPlane: controlPlane, url: url, directory: directory, admin: admin))
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }

    /// A request with `token` as the bearer credential (or `authorization` verbatim, or nothing).
    func request(
        _ method: HTTPMethod, _ path: String, token: String? = nil, authorization: String? = nil,
        body: [UInt8]? = nil, headers: [(String, String)] = []
    ) async throws -> TestResponse {
        var headers = headers
        if let token { headers.append(("authorization", "Bearer " + token)) }
        if let authorization { headers.append(("authorization", authorization)) }
        return try await TestHTTP.request(url + path, method: method, headers: headers, body: body)
    }

    /// A host's sync: `token` speaking as host `name`, advertising `url`.
    func sync(_ token: String, as name: String, url: String) async throws -> TestResponse {
        try await request(
            .POST, "/v1/internal/hosts/\(name)/sync", token: token,
            body: try Self.json(Self.hostStatus(name, url: url)))
    }

    /// An API token created through the store.
    func token(_ tenant: String, _ scopes: [Scope], expiresAtMs: Int64? = nil) async throws -> String {
        try await store.createToken(tenant: tenant, scopes: scopes, expiresAtMs: expiresAtMs, description: nil).token
    }

    /// Uploads a small Python bundle named `name`; `variant` makes a distinct version. Returns the response.
    func upload(_ name: String, variant: Int, token: String) async throws -> TestResponse {
        try await request(.POST, "/v1/functions/\(name)/versions", token: token, body: try Self.bundle(name, variant))
    }

    /// A small Python bundle named `name`; `variant` makes a distinct version, `regions` pins it.
    static func bundle(_ name: String, _ variant: Int, regions: [String] = []) throws -> [UInt8] {
        let directory = try TemporaryDirectory(prefix: "verge-bundle")
        defer { directory.remove() }
        let pinned = regions.isEmpty ? "" : #","regions":["# + regions.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        try #"{"name":"\#(name)","runtime":"python","entry":"main.py"\#(pinned)}"#.write(
            toFile: directory.path + "/verge.json", atomically: true, encoding: .utf8)
        try "# variant \(variant)\ndef handle(request):\n    return 'ok'\n".write(
            toFile: directory.path + "/main.py", atomically: true, encoding: .utf8)
        return try BundleArchive.pack(directory: directory.path)
    }

    static func usageRecord(_ id: String, tenant: String, function: String, host: String) -> UsageRecord {
        UsageRecord(
            invocationID: id, tenant: tenant, function: function, version: String(repeating: "a", count: 64),
            host: host, startTimeUs: 1_000_000, durationUs: 1000, queueUs: 0, coldStart: false, initUs: 0,
            status: .ok, httpStatus: 200, requestBytes: 1, responseBytes: 2)
    }

    static func hostStatus(_ name: String, url: String) -> HostStatus {
        HostStatus(
            name: name, url: url, location: GeoPoint(50.11, 8.68), warmWorkers: 0, functions: [], unshippedRecords: 0,
            isolation: .sandbox)
    }

    static func json(_ value: some Encodable) throws -> [UInt8] { Array(try JSONCoding.encoder.encode(value)) }
}
