import Foundation
import VergeCore
import ZIPFoundation

extension BundleArchive {
    /// Packs a bundle directory into a zip archive that is byte-for-byte the same for the same tree.
    ///
    /// Entries are in sorted order (by the UTF-8 bytes of their paths, directories included), all dated
    /// 1980-01-01 00:00:00 UTC, with modes normalised to 0755 for directories and executable files and 0644 for
    /// other files; owners, timestamps and other metadata are not recorded. `.git`, `.build`, `__pycache__` and
    /// `.DS_Store` are skipped wherever they are. `verge.json` is validated first and the entry it names must be
    /// in the bundle. Symbolic links and special files are refused, naming the path.
    ///
    /// `extraFiles` adds files from anywhere (`source`) at the given bundle paths with mode 0755, replacing a file
    /// of the same path in the directory; this is how a built Swift binary lands at `bin/<entry>`.
    ///
    /// The result is checked with ``inspect(_:limits:)`` before it is returned, so a packed bundle is always one the
    /// control plane accepts. Errors: `.badRequest` when the directory, `verge.json` or an extra file cannot be read;
    /// `.invalidBundle` for bundle rule violations; `.payloadTooLarge` when the archive exceeds `maxArchiveBytes`.
    public static func pack(
        directory: String,
        extraFiles: [(path: String, source: String)] = [],
        limits: BundleLimits = .default
    ) throws(VergeError) -> [UInt8] {
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        let shownRoot = Quoted.single(directory)
        switch FileSystem.kind(root, followLinks: true) {
        case .directory?: break
        case nil: throw VergeError(.badRequest, "no bundle directory at \(shownRoot)")
        default: throw VergeError(.badRequest, "\(shownRoot) is not a directory")
        }

        let manifest = try readManifest(root: root, shownRoot: shownRoot)
        var items = try collectItems(root: root, limits: limits)
        try addExtraFiles(extraFiles, to: &items, limits: limits)

        let entryPath = manifest.entryPath
        switch items[BundlePath.Key(entryPath)]?.isDirectory {
        case false?:
            if manifest.runtime == .swift {
                items[BundlePath.Key(entryPath)]?.isExecutable = true
            }
        case true?:
            throw VergeError(
                .invalidBundle,
                "\(Manifest.fileName) names \(Quoted.single(entryPath)) as its entry, but that is a directory"
            )
        case nil:
            if manifest.runtime == .swift {
                throw VergeError(
                    .invalidBundle,
                    "bundle has no executable at \(Quoted.single(entryPath)): build the swift product "
                        + "\(Quoted.json(manifest.entry)) and add the binary as an extra file at \(entryPath)"
                )
            }
            throw VergeError(
                .invalidBundle,
                "\(Manifest.fileName) names \(Quoted.single(entryPath)) as its entry, but there is no such file in "
                    + shownRoot
            )
        }

        if items.values.reduce(0, { $0 + $1.size }) > limits.maxUncompressedBytes {
            throw tooLarge(limits)
        }
        let archive = try write(items, limits: limits)
        guard archive.count <= limits.maxArchiveBytes else {
            throw VergeError(
                .payloadTooLarge,
                "packed bundle is \(archive.count) bytes; the limit is \(limits.maxArchiveBytes) bytes"
            )
        }
        _ = try inspect(archive, limits: limits)
        return archive
    }

    /// A file or directory to pack.
    private struct Item {
        /// The path inside the bundle.
        var path: String
        var isDirectory: Bool
        var isExecutable: Bool
        /// Where a file's contents are read from.
        var source: String
        /// A file's size when it was listed.
        var size: Int = 0

        /// The entry name in the zip: directories end with `/`.
        var zipPath: String { isDirectory ? path + "/" : path }
    }

    private static func readManifest(root: String, shownRoot: String) throws(VergeError) -> Manifest {
        let path = root + "/" + Manifest.fileName
        switch FileSystem.kind(path) {
        case .file(let size, _)?:
            guard size <= BundleLimits.maxManifestBytes else {
                throw VergeError(
                    .invalidBundle,
                    "\(Manifest.fileName) is \(size) bytes; the limit is \(BundleLimits.maxManifestBytes) bytes"
                )
            }
            return try Manifest.parse(Array(FileSystem.readFile(path, code: .badRequest)))
        case nil:
            throw VergeError(.badRequest, "no \(Manifest.fileName) in \(shownRoot)")
        case .symbolicLink?:
            throw symbolicLink(Manifest.fileName)
        default:
            throw VergeError(.invalidBundle, "\(Manifest.fileName) in \(shownRoot) is not a regular file")
        }
    }

    /// Every file and directory under `root`, by bundle path, leaving out the skipped names.
    private static func collectItems(root: String, limits: BundleLimits) throws(VergeError) -> [BundlePath.Key: Item] {
        var items: [BundlePath.Key: Item] = [:]
        func collect(_ directory: String, _ relative: String) throws(VergeError) {
            for name in try FileSystem.contentsOfDirectory(directory, code: .badRequest).sorted()
            where !skippedNames.contains(name) {
                let path = relative.isEmpty ? name : relative + "/" + name
                let source = directory + "/" + name
                if let problem = BundlePath.problem(path, maxLength: limits.maxPathLength) {
                    throw VergeError(.invalidBundle, "bundle path \(Quoted.single(path)) \(problem)")
                }
                switch FileSystem.kind(source) {
                case .file(let size, let isExecutable)?:
                    items[BundlePath.Key(path)] = Item(
                        path: path, isDirectory: false, isExecutable: isExecutable, source: source, size: size
                    )
                case .directory?:
                    items[BundlePath.Key(path)] = Item(
                        path: path, isDirectory: true, isExecutable: false, source: source)
                    try collect(source, path)
                case .symbolicLink?:
                    throw symbolicLink(path)
                case .other?:
                    throw VergeError(
                        .invalidBundle,
                        "bundle path \(Quoted.single(path)) is a special file (a device, pipe or socket); bundles may "
                            + "contain only regular files and directories"
                    )
                case nil:
                    throw VergeError(.badRequest, "cannot read \(Quoted.single(source)): it disappeared while packing")
                }
                if items.count > limits.maxFiles {
                    throw VergeError(
                        .invalidBundle,
                        "bundle has more than \(limits.maxFiles) files and directories; the limit is \(limits.maxFiles)"
                    )
                }
            }
        }
        try collect(root, "")
        return items
    }

    private static func addExtraFiles(
        _ extraFiles: [(path: String, source: String)],
        to items: inout [BundlePath.Key: Item],
        limits: BundleLimits
    ) throws(VergeError) {
        var added: Set<BundlePath.Key> = []
        for (path, source) in extraFiles {
            let shownPath = Quoted.single(path)
            if let problem = BundlePath.problem(path, maxLength: limits.maxPathLength) {
                throw VergeError(.badRequest, "extra file path \(shownPath) \(problem)")
            }
            if path.utf8.elementsEqual(Manifest.fileName.utf8) {
                throw VergeError(.badRequest, "an extra file cannot replace \(Manifest.fileName)")
            }
            guard added.insert(BundlePath.Key(path)).inserted else {
                throw VergeError(.badRequest, "extra file path \(shownPath) is given more than once")
            }
            guard case .file(let size, _)? = FileSystem.kind(source, followLinks: true) else {
                throw VergeError(
                    .badRequest,
                    "extra file \(Quoted.single(source)) for bundle path \(shownPath) does not exist or is not a "
                        + "regular file"
                )
            }
            if items[BundlePath.Key(path)]?.isDirectory == true {
                throw VergeError(
                    .invalidBundle,
                    "extra file \(shownPath) would replace the directory \(shownPath) of the bundle"
                )
            }
            for ancestor in BundlePath.ancestors(of: path) {
                if let existing = items[BundlePath.Key(ancestor)] {
                    guard existing.isDirectory else {
                        throw VergeError(
                            .invalidBundle,
                            "extra file \(shownPath) would be inside \(Quoted.single(ancestor)), which is a file of "
                                + "the bundle"
                        )
                    }
                } else {
                    items[BundlePath.Key(ancestor)] = Item(
                        path: ancestor, isDirectory: true, isExecutable: false, source: "")
                }
            }
            items[BundlePath.Key(path)] = Item(
                path: path, isDirectory: false, isExecutable: true, source: source, size: size
            )
        }
        if items.count > limits.maxFiles {
            throw VergeError(
                .invalidBundle,
                "bundle has more than \(limits.maxFiles) files and directories; the limit is \(limits.maxFiles)"
            )
        }
    }

    /// The zip archive of `items`, in sorted order with fixed dates and normalised modes.
    private static func write(_ items: [BundlePath.Key: Item], limits: BundleLimits) throws(VergeError) -> [UInt8] {
        let archive: Archive
        do {
            archive = try Archive(accessMode: .create)
        } catch {
            throw VergeError(.internalError, "cannot create an archive in memory", underlying: error)
        }
        let date = Date(timeIntervalSince1970: packedModificationTime)
        let sorted = items.values.sorted { $0.zipPath.utf8.lexicographicallyPrecedes($1.zipPath.utf8) }
        var totalBytes = 0
        for item in sorted {
            let zipPath = item.zipPath
            do {
                if item.isDirectory {
                    try archive.addEntry(
                        with: zipPath,
                        type: .directory,
                        uncompressedSize: Int64(0),
                        modificationDate: date,
                        permissions: 0o755,
                        compressionMethod: .none,
                        provider: { _, _ in Data() }
                    )
                    continue
                }
                let contents = try FileSystem.readFile(item.source, code: .badRequest)
                totalBytes += contents.count
                guard totalBytes <= limits.maxUncompressedBytes else { throw tooLarge(limits) }
                try archive.addEntry(
                    with: zipPath,
                    type: .file,
                    uncompressedSize: Int64(contents.count),
                    modificationDate: date,
                    permissions: item.isExecutable ? 0o755 : 0o644,
                    compressionMethod: contents.isEmpty ? .none : .deflate,
                    bufferSize: chunkSize,
                    provider: { position, size in
                        let start = contents.startIndex + Int(position)
                        return contents.subdata(in: start..<start + size)
                    }
                )
            } catch let error as VergeError {
                throw error
            } catch {
                throw VergeError(
                    .internalError, "cannot add \(Quoted.single(zipPath)) to the archive", underlying: error)
            }
        }
        guard let data = archive.data else {
            throw VergeError(.internalError, "the in-memory archive has no data")
        }
        return Array(data)
    }

    private static func tooLarge(_ limits: BundleLimits) -> VergeError {
        VergeError(
            .invalidBundle,
            "bundle files total more than \(limits.maxUncompressedBytes) bytes; the limit is "
                + "\(limits.maxUncompressedBytes) bytes"
        )
    }

    private static func symbolicLink(_ path: String) -> VergeError {
        VergeError(
            .invalidBundle,
            "bundle path \(Quoted.single(path)) is a symbolic link; bundles may contain only regular files and "
                + "directories (replace the link with a copy of its target)"
        )
    }
}
