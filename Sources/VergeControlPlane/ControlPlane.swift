import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import VergeBundle
import VergeCore
import VergeHTTP
import VergeUsage

/// The control plane: accepts bundles and versions them, tells hosts what to serve, collects their usage records
/// and answers the CLI. Its API is described in `docs/api.md`; errors use the one JSON error shape.
public final class ControlPlane: Service, Sendable {
    public let configuration: ControlPlaneConfiguration
    public let listenAddress = ListenAddress()
    let store: ControlPlaneStore
    let bundles: BundleStore
    /// The control plane's own credential, presented to hosts when it reads their logs; new at every start.
    let peerCredential = Credential.generate(.controlPlane)
    /// Where the admin token created on first start is written (mode 0600): `DATA/admin-token`.
    public var adminTokenPath: String { configuration.dataDirectory + "/admin-token" }
    /// Whether this start created the `default` tenant and its admin token (the first start on this data).
    public let createdAdminToken: Bool
    let secrets: SecretBox
    let logQueries = LogQueries()
    private let logger: Logger
    private let metricsText: @Sendable () -> String

    public init(
        configuration: ControlPlaneConfiguration, logger: Logger, metricsText: @escaping @Sendable () -> String = { "" }
    ) throws {
        // The directory itself is the control plane's alone; its parents keep whatever mode they have (a local
        // cluster's hosts live beside it and their workers must traverse the parent).
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        chmod(configuration.dataDirectory, 0o700)
        self.configuration = configuration
        let databasePath = configuration.dataDirectory + "/control.sqlite"
        self.store = try ControlPlaneStore(path: databasePath)
        for suffix in ["", "-wal", "-shm"] { chmod(databasePath + suffix, 0o600) }
        // First start: the default tenant and an admin token, written where only this user can read it.
        if let admin = try store.bootstrapIfEmpty() {
            try SecretFile.write(admin.token, to: configuration.dataDirectory + "/admin-token")
            createdAdminToken = true
        } else {
            createdAdminToken = false
        }
        self.bundles = try BundleStore(directory: configuration.dataDirectory + "/bundles")
        self.secrets = SecretBox(
            key: try SecretKeyFile.loadOrCreate(
                path: configuration.secretKeyFile ?? configuration.dataDirectory + "/secret.key"))
        self.logger = logger
        self.metricsText = metricsText
    }

    public func run() async throws {
        let router = Router(context: VergeRequestContext.self)
        router.add(middleware: VergeErrorMiddleware())
        router.add(middleware: WriteRateLimitMiddleware(limit: configuration.writeRateLimit))
        ControlPlaneAPI(controlPlane: self, metricsText: metricsText).register(on: router)
        let app = try HTTPServer.application(
            responder: router.buildResponder(), bind: configuration.bind, name: "verge-control-plane",
            listenAddress: listenAddress, limits: configuration.listener, tls: configuration.tls, logger: logger
        )
        try await app.run()
    }
}

extension ControlPlane {
    /// Issues a host's own credential in process (the embedded local cluster), revoking earlier ones of the name.
    public func issueHostCredential(name: String) throws -> Credential {
        try store.issueHostCredential(name: name)
    }

    /// Issues a gateway credential in process (the embedded local cluster).
    public func issueGatewayCredential(label: String) throws -> Credential {
        try store.issueGatewayCredential(label: label)
    }
}

/// Bundle archives by version, written atomically (temporary file, then rename) and never modified.
struct BundleStore: Sendable {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(_ version: String) -> String { directory + "/" + version + ".zip" }

    func contains(_ version: String) -> Bool { FileManager.default.fileExists(atPath: path(version)) }

    func write(_ bytes: [UInt8], version: String) throws {
        guard !contains(version) else { return }
        let temporary = directory + "/.upload-" + UUID().uuidString
        try Data(bytes).write(to: URL(fileURLWithPath: temporary))
        if rename(temporary, path(version)) != 0 {
            try? FileManager.default.removeItem(atPath: temporary)
            throw VergeError(.internalError, "cannot store bundle \(version)")
        }
    }

    /// The bundle, memory-mapped: reading it copies nothing into memory until it is sent.
    func read(_ version: String) -> Data? {
        try? Data(contentsOf: URL(fileURLWithPath: path(version)), options: .alwaysMapped)
    }
}
