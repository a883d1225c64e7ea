/// Size limits a bundle must stay within, checked when packing, inspecting and extracting.
public struct BundleLimits: Sendable, Equatable {
    /// Largest archive accepted, in bytes (the compressed upload). Default 64 MiB.
    public var maxArchiveBytes: Int
    /// Largest total size of all files once unpacked, in bytes. Default 256 MiB.
    public var maxUncompressedBytes: Int
    /// Most entries (files and directories) in a bundle. Default 10 000.
    public var maxFiles: Int
    /// Longest path inside a bundle, in UTF-8 bytes. Default 1024.
    public var maxPathLength: Int

    public init(
        maxArchiveBytes: Int = 64 << 20,
        maxUncompressedBytes: Int = 256 << 20,
        maxFiles: Int = 10_000,
        maxPathLength: Int = 1024
    ) {
        self.maxArchiveBytes = maxArchiveBytes
        self.maxUncompressedBytes = maxUncompressedBytes
        self.maxFiles = maxFiles
        self.maxPathLength = maxPathLength
    }

    public static let `default` = BundleLimits()

    /// Largest `verge.json` accepted, in bytes.
    static let maxManifestBytes = 1 << 20
}
