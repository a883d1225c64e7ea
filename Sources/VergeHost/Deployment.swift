import VergeBundle
import VergeCore

/// A function version installed on this host: its manifest and the directory its bundle was unpacked into.
public struct Deployment: Sendable, Codable, Equatable {
    public var tenant: String
    public var name: String
    /// The bundle's SHA-256; also its directory name in the host's bundle cache (under the tenant's directory).
    public var version: String
    public var manifest: Manifest
    public var bundleDirectory: String

    public init(tenant: String, name: String, version: String, manifest: Manifest, bundleDirectory: String) {
        self.tenant = tenant
        self.name = name
        self.version = version
        self.manifest = manifest
        self.bundleDirectory = bundleDirectory
    }

    public var key: FunctionKey { FunctionKey(tenant: tenant, name: name) }
}

/// A function's identity across versions.
public struct FunctionKey: Hashable, Sendable, Codable, CustomStringConvertible {
    public var tenant: String
    public var name: String

    public init(tenant: String, name: String) {
        self.tenant = tenant
        self.name = name
    }

    public var description: String { "\(tenant)/\(name)" }
}
