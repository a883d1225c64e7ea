import Foundation
import VergeCore

extension BundleArchive {
    /// Validates an archive like ``inspect(_:limits:)`` and unpacks it into `directory`, which must not exist yet.
    ///
    /// Nothing is written before every path and the manifest have been checked. The bundle is written into a
    /// temporary sibling directory (`.<name>.partial-<random>`) that is renamed into place once every file has
    /// been written and checked, so `directory` either does not exist or holds the complete bundle; on any error
    /// the temporary directory is removed. A process killed mid-way can leave that temporary directory behind,
    /// never a half bundle. Files are not flushed to storage one by one (that costs milliseconds per file):
    /// after a power loss, a cache of extracted bundles should be rebuilt from the archives.
    ///
    /// Files get mode 0755 when packed executable (and `bin/<entry>` of a swift bundle always), otherwise 0644;
    /// directories 0755: never setuid, setgid, sticky or world-writable.
    ///
    /// Bundle problems throw `VergeError(.invalidBundle, …)`; an existing `directory` or a failing disk throw
    /// `VergeError(.internalError, …)`.
    @discardableResult
    public static func extract(
        _ archive: [UInt8],
        to directory: String,
        limits: BundleLimits = .default
    ) throws(VergeError) -> Manifest {
        let checked = try CheckedArchive(Data(archive), limits: limits)

        let target = URL(fileURLWithPath: directory).standardizedFileURL
        let targetPath = target.path
        if FileSystem.exists(targetPath) {
            throw VergeError(.internalError, "cannot extract bundle to \(Quoted.single(targetPath)): it already exists")
        }
        let parentPath = target.deletingLastPathComponent().path
        try FileSystem.createDirectories(parentPath)
        let suffix = String(UInt64.random(in: .min ... .max), radix: 16)
        let stagingPath = parentPath + "/." + target.lastPathComponent + ".partial-" + suffix
        try FileSystem.makeDirectory(stagingPath, mode: 0o700)
        do throws(VergeError) {
            try write(checked, into: stagingPath, limits: limits)
            try FileSystem.setMode(stagingPath, 0o755)
            if FileSystem.exists(targetPath) {
                throw VergeError(
                    .internalError, "cannot extract bundle to \(Quoted.single(targetPath)): it already exists")
            }
            try FileSystem.rename(stagingPath, to: targetPath)
        } catch {
            FileSystem.removeTree(stagingPath)
            throw error
        }
        return checked.manifest
    }

    /// Writes every entry of a checked archive under `root`, creating directories as needed (archives made by
    /// some tools have no directory entries).
    private static func write(_ checked: CheckedArchive, into root: String, limits: BundleLimits) throws(VergeError) {
        var created: Set<BundlePath.Key> = []
        func ensureDirectory(_ path: String) throws(VergeError) {
            for directory in BundlePath.ancestors(of: path) + [path]
            where created.insert(BundlePath.Key(directory)).inserted {
                try FileSystem.makeDirectory(root + "/" + directory, mode: 0o755)
            }
        }

        var budget = limits.maxUncompressedBytes
        for entry in checked.entries {
            if entry.isDirectory {
                try ensureDirectory(entry.path)
                continue
            }
            if let parent = BundlePath.ancestors(of: entry.path).last {
                try ensureDirectory(parent)
            }
            try FileSystem.withNewFile(root + "/" + entry.path, mode: entry.isExecutable ? 0o755 : 0o644) {
                writer throws(VergeError) in
                try checked.readFile(entry, budget: &budget) { chunk throws(VergeError) in try writer.write(chunk) }
            }
        }
    }
}
