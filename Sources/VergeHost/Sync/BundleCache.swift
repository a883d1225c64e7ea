import Foundation
import VergeBundle
import VergeCore

/// Bundles this host has fetched, unpacked under `bundles/{tenant}/{sha256}/`, and the list of deployments it serves,
/// kept in `deployments.json` so the host serves them again after a restart without the control plane.
struct BundleCache: Sendable {
    let directory: String
    let limits: BundleLimits

    init(dataDirectory: String, limits: BundleLimits = .default) {
        self.directory = dataDirectory + "/bundles"
        self.limits = limits
    }

    /// Each tenant's bundles are unpacked apart: two tenants may upload the same bytes, and each pool gives its
    /// bundle directory to its own workers' group.
    func bundleDirectory(tenant: String, version: String) -> String { directory + "/" + tenant + "/" + version }

    /// The manifest of a cached version, or `nil` when it is not cached.
    func cachedManifest(tenant: String, version: String) -> Manifest? {
        guard Self.isVersion(version), TenantName.isValid(tenant),
            let bytes = FileManager.default.contents(
                atPath: bundleDirectory(tenant: tenant, version: version) + "/" + Manifest.fileName)
        else { return nil }
        return try? Manifest.parse(Array(bytes))
    }

    /// Verifies that `archive` hashes to `version`, then unpacks it (validating every entry) into the cache.
    func store(_ archive: [UInt8], tenant: String, version: String) throws(VergeError) -> Manifest {
        guard Self.isVersion(version) else { throw VergeError(.badRequest, "'\(version)' is not a bundle version") }
        guard TenantName.isValid(tenant) else { throw VergeError(.badRequest, "'\(tenant)' is not a tenant name") }
        let actual = BundleArchive.sha256Hex(archive)
        guard actual == version else {
            throw VergeError(.invalidBundle, "bundle \(version) arrived with hash \(actual); refusing it")
        }
        if let manifest = cachedManifest(tenant: tenant, version: version) { return manifest }
        let tenantDirectory = directory + "/" + tenant
        try? FileManager.default.createDirectory(atPath: tenantDirectory, withIntermediateDirectories: true)
        // Traversable, not listable, like `bundles/` itself.
        chmod(tenantDirectory, 0o711)
        return try BundleArchive.extract(archive, to: bundleDirectory(tenant: tenant, version: version), limits: limits)
    }

    static func isVersion(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// The deployments list persisted beside the cache.
struct DeploymentsFile: Sendable {
    let path: String

    init(dataDirectory: String) {
        self.path = dataDirectory + "/deployments.json"
    }

    func load() -> [Deployment] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return (try? JSONDecoder().decode([Deployment].self, from: data)) ?? []
    }

    func save(_ deployments: [Deployment]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try encoder.encode(deployments).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
