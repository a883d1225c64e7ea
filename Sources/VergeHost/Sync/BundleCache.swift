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

    /// The saved deployments. It holds secrets, so it must be readable by its owner only: when it is not, the
    /// deployments with secrets are not served from it (the control plane sends them again) and are counted in
    /// `refused`.
    func load() -> (deployments: [Deployment], refused: Int) {
        guard let data = FileManager.default.contents(atPath: path),
            let deployments = try? JSONDecoder().decode([Deployment].self, from: data)
        else { return ([], 0) }
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & 0o077 == 0 else {
            let kept = deployments.filter { $0.secrets.isEmpty }
            return (kept, deployments.count - kept.count)
        }
        return (deployments, 0)
    }

    /// Writes the file atomically, mode 0600 from its creation on.
    func save(_ deployments: [Deployment]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let bytes = Array(try encoder.encode(deployments))
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VergeError(.internalError, "cannot create \(temporary): errno \(errno)") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw VergeError(.internalError, "cannot write \(path)")
        }
    }
}
