import VergeBundle
import VergeCore

// The control plane API's answers, shared with the CLI that reads them.

/// A function and its live version.
public struct FunctionSummary: Codable, Sendable, Equatable {
    public var tenant: String
    public var name: String
    public var liveVersion: String
    public var liveNumber: Int
    public var versionCount: Int
    public var updatedAtMs: Int64

    enum CodingKeys: String, CodingKey {
        case tenant, name
        case liveVersion = "live_version"
        case liveNumber = "live_number"
        case versionCount = "version_count"
        case updatedAtMs = "updated_at_ms"
    }
}

/// One immutable version of a function.
public struct VersionSummary: Codable, Sendable, Equatable {
    /// SHA-256 of the bundle archive.
    public var version: String
    /// 1, 2, 3… in upload order, for humans.
    public var number: Int
    public var sizeBytes: Int
    public var createdAtMs: Int64
    public var live: Bool
    public var manifest: Manifest

    enum CodingKeys: String, CodingKey {
        case version, number, live, manifest
        case sizeBytes = "size_bytes"
        case createdAtMs = "created_at_ms"
    }
}

/// A function, its versions and where each host stands in rolling it out.
public struct FunctionDetail: Codable, Sendable {
    public struct HostRollout: Codable, Sendable {
        public var host: String
        public var healthy: Bool
        /// The version the host serves, if any.
        public var version: String?
        public var live: Bool
        public var warmWorkers: Int

        enum CodingKeys: String, CodingKey {
            case host, healthy, version, live
            case warmWorkers = "warm_workers"
        }
    }

    public var function: FunctionSummary
    public var versions: [VersionSummary]
    public var hosts: [HostRollout]
    /// Every healthy host serves the live version.
    public var liveEverywhere: Bool

    enum CodingKeys: String, CodingKey {
        case function, versions, hosts
        case liveEverywhere = "live_everywhere"
    }
}

/// A secret as the API shows it: its name and when it was last set, never its value.
public struct SecretSummary: Codable, Sendable, Equatable {
    public var name: String
    public var updatedAtMs: Int64

    enum CodingKeys: String, CodingKey {
        case name
        case updatedAtMs = "updated_at_ms"
    }

    public init(name: String, updatedAtMs: Int64) {
        self.name = name
        self.updatedAtMs = updatedAtMs
    }
}
