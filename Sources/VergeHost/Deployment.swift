import VergeBundle
import VergeCore

/// A function version installed on this host: its manifest and the directory its bundle was unpacked into.
public struct Deployment: Sendable, Codable, Equatable {
    public var tenant: String
    public var name: String
    /// The bundle's SHA-256; also its directory name in the host's bundle cache (under the tenant's directory).
    public var version: String
    /// The control plane's number for `version` (1, 2, …), shown in usage records; nil when it was not told.
    public var versionNumber: Int?
    public var manifest: Manifest
    public var bundleDirectory: String
    /// The function's secrets, given to its workers as environment variables. Kept on disk only in files of mode
    /// 0600; never logged (`description` lists names only).
    public var secrets: [String: String]
    /// The control plane's version of `secrets`; `nil` when the function has none.
    public var secretsVersion: String?

    public init(
        tenant: String, name: String, version: String, manifest: Manifest, bundleDirectory: String,
        secrets: [String: String] = [:], secretsVersion: String? = nil, versionNumber: Int? = nil
    ) {
        self.tenant = tenant
        self.name = name
        self.version = version
        self.versionNumber = versionNumber
        self.manifest = manifest
        self.bundleDirectory = bundleDirectory
        self.secrets = secrets
        self.secretsVersion = secretsVersion
    }

    enum CodingKeys: String, CodingKey {
        case tenant, name, version, manifest, bundleDirectory, secrets, secretsVersion, versionNumber
    }

    /// Reads deployments saved before secrets existed too.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            tenant: try container.decode(String.self, forKey: .tenant),
            name: try container.decode(String.self, forKey: .name),
            version: try container.decode(String.self, forKey: .version),
            manifest: try container.decode(Manifest.self, forKey: .manifest),
            bundleDirectory: try container.decode(String.self, forKey: .bundleDirectory),
            secrets: try container.decodeIfPresent([String: String].self, forKey: .secrets) ?? [:],
            secretsVersion: try container.decodeIfPresent(String.self, forKey: .secretsVersion),
            versionNumber: try container.decodeIfPresent(Int.self, forKey: .versionNumber)
        )
    }

    public var key: FunctionKey { FunctionKey(tenant: tenant, name: name) }
}

extension Deployment: CustomStringConvertible {
    /// Identity and secret names only, never a value.
    public var description: String {
        "Deployment(\(tenant)/\(name) \(version.prefix(12)), secrets: \(secrets.keys.sorted()))"
    }
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
