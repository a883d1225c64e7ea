import Foundation
import VergeCore
import ZIPFoundation

extension BundleArchive {
    /// Validates an archive in memory without writing anything to disk, and returns its manifest.
    ///
    /// Checks, each failing with `VergeError(.invalidBundle, …)` that names the entry and the rule:
    /// - the archive is at most `maxArchiveBytes` (else `.payloadTooLarge`) and is a zip;
    /// - every entry has a relative UTF-8 path without `..`, `.` or empty components, backslash or NUL,
    ///   at most `maxPathLength` bytes, and appears once; no entry lies inside a file;
    /// - every entry is a regular file or a directory (symbolic links and devices are refused);
    /// - there are at most `maxFiles` entries, and the files declare at most `maxUncompressedBytes` in total;
    /// - `verge.json` is at the root and valid, and the entry it names exists (`python`: the `.py` file;
    ///   `swift`: `bin/<entry>`);
    /// - every file's data inflate to exactly its declared size with a matching CRC-32; reading stops as soon as
    ///   an entry produces more than it declared, so a lying header cannot bomb.
    public static func inspect(_ archive: [UInt8], limits: BundleLimits = .default) throws(VergeError) -> Manifest {
        try inspect(CheckedArchive(Data(archive), limits: limits), limits: limits)
    }

    /// Validates the archive in the file at `path` like ``inspect(_:limits:)``, reading it through a memory map:
    /// the archive is never copied into memory as a whole, so an upload can go to disk first and be checked there.
    public static func inspect(fileAt path: String, limits: BundleLimits = .default) throws(VergeError) -> Manifest {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw VergeError(.internalError, "cannot read bundle file \(Quoted.single(path))", underlying: error)
        }
        return try inspect(CheckedArchive(data, limits: limits), limits: limits)
    }

    private static func inspect(_ checked: CheckedArchive, limits: BundleLimits) throws(VergeError) -> Manifest {
        var budget = limits.maxUncompressedBytes
        for entry in checked.entries where !entry.isDirectory {
            try checked.readFile(entry, budget: &budget) { _ throws(VergeError) in }
        }
        return checked.manifest
    }
}

/// One entry of a ``CheckedArchive``.
struct ArchiveEntry {
    /// The path inside the bundle, without a trailing `/` for directories.
    var path: String
    var isDirectory: Bool
    /// Unpacked with mode 0755 rather than 0644.
    var isExecutable: Bool
    var record: ZipLayout.Record
}

/// An archive whose structure, paths, types, declared sizes and manifest passed every check. File contents are
/// checked as they are read with ``readFile(_:budget:into:)``.
struct CheckedArchive {
    /// Indexed from 0; possibly a memory map of a file.
    let bytes: Data
    let entries: [ArchiveEntry]
    let manifest: Manifest

    init(_ bytes: Data, limits: BundleLimits) throws(VergeError) {
        guard bytes.count <= limits.maxArchiveBytes else {
            throw VergeError(
                .payloadTooLarge,
                "bundle archive is \(bytes.count) bytes; the limit is \(limits.maxArchiveBytes) bytes"
            )
        }
        let layout = try ZipLayout(bytes, maxEntries: limits.maxFiles)
        let archive: Archive
        do {
            archive = try Archive(data: bytes, accessMode: .read)
        } catch {
            throw VergeError(.invalidBundle, "bundle is not a zip archive", underlying: error)
        }

        var entries: [ArchiveEntry] = []
        var isDirectoryByPath: [BundlePath.Key: Bool] = [:]
        var declaredBytes = 0
        var records = layout.records.makeIterator()
        for zipEntry in archive {
            guard let record = records.next() else { throw Self.unreadable }
            let entry = try Self.checkedEntry(zipEntry, record, limits: limits)
            if isDirectoryByPath.updateValue(entry.isDirectory, forKey: BundlePath.Key(entry.path)) != nil {
                throw VergeError(.invalidBundle, "bundle has more than one entry for \(Quoted.single(entry.path))")
            }
            if !entry.isDirectory {
                declaredBytes += record.uncompressedSize
                if declaredBytes > limits.maxUncompressedBytes {
                    throw VergeError(
                        .invalidBundle,
                        "bundle unpacks to more than \(limits.maxUncompressedBytes) bytes (its files declare at least "
                            + "\(declaredBytes) bytes); the limit is \(limits.maxUncompressedBytes) bytes"
                    )
                }
            }
            entries.append(entry)
        }
        guard records.next() == nil else { throw Self.unreadable }

        for entry in entries {
            for ancestor in BundlePath.ancestors(of: entry.path)
            where isDirectoryByPath[BundlePath.Key(ancestor)] == false {
                throw VergeError(
                    .invalidBundle,
                    "bundle entry \(Quoted.single(entry.path)) is inside \(Quoted.single(ancestor)), which is a file"
                )
            }
        }

        let manifest = try Self.readManifest(bytes, entries, isDirectoryByPath: isDirectoryByPath)
        // The executable of a swift function must be runnable, whatever the tool that zipped it recorded.
        if let executablePath = manifest.executablePath,
            let index = entries.firstIndex(where: { $0.path.utf8.elementsEqual(executablePath.utf8) })
        {
            entries[index].isExecutable = true
        }
        self.bytes = bytes
        self.entries = entries
        self.manifest = manifest
    }

    /// Reads one file's contents in chunks, checking them against the size and CRC-32 the archive declares.
    /// `budget` is what remains of `maxUncompressedBytes`; it shrinks by the bytes produced.
    func readFile(
        _ entry: ArchiveEntry,
        budget: inout Int,
        into consumer: (Data) throws(VergeError) -> Void
    ) throws(VergeError) {
        try Self.readFile(entry, of: bytes, budget: &budget, into: consumer)
    }

    private static func readFile(
        _ entry: ArchiveEntry,
        of bytes: Data,
        budget: inout Int,
        into consumer: (Data) throws(VergeError) -> Void
    ) throws(VergeError) {
        let record = entry.record
        var produced = 0
        func deliver(_ chunk: Data) throws(VergeError) {
            produced += chunk.count
            if produced > record.uncompressedSize {
                throw VergeError(
                    .invalidBundle,
                    "bundle entry \(Quoted.single(entry.path)) unpacks to more than the \(record.uncompressedSize) "
                        + "bytes its header declares"
                )
            }
            if produced > budget {
                throw VergeError(.invalidBundle, "bundle unpacks to more bytes than its limit allows")
            }
            try consumer(chunk)
        }

        var checksum: CRC32 = 0
        let end = record.dataRange.upperBound
        if record.isDeflated, record.compressedSize > 0 {
            // Our provider hands out exactly the entry's compressed bytes, in chunks of `chunkSize` (the final one
            // padded with zeros, as inflate may look at a whole chunk), then refuses: a stream that has not ended by
            // then is truncated, and ZIPFoundation would otherwise wait for more input forever.
            let chunkSize = BundleArchive.chunkSize
            var next = record.dataStart
            var exhausted = false
            do {
                checksum = try Data.decompress(
                    size: Int64(record.compressedSize),
                    bufferSize: chunkSize,
                    skipCRC32: false,
                    provider: { _, _ in
                        guard !exhausted else { throw Self.corrupt(entry, "its compressed data are truncated") }
                        let count = min(chunkSize, end - next)
                        var chunk = Data(count: chunkSize)
                        chunk.replaceSubrange(0..<count, with: bytes[next..<next + count])
                        next += count
                        exhausted = next == end
                        return chunk
                    },
                    consumer: { chunk in try deliver(chunk) }
                )
            } catch let error as VergeError {
                throw error
            } catch {
                throw Self.corrupt(entry, "its compressed data cannot be inflated")
            }
        } else {  // Stored, or an empty deflated entry.
            var next = record.dataStart
            while next < end {
                let count = min(BundleArchive.chunkSize, end - next)
                let chunk = Data(bytes[next..<next + count])
                checksum = chunk.crc32(checksum: checksum)
                try deliver(chunk)
                next += count
            }
        }
        guard produced == record.uncompressedSize else {
            throw Self.corrupt(entry, "it holds \(produced) bytes but its header declares \(record.uncompressedSize)")
        }
        guard checksum == record.crc32 else {
            throw Self.corrupt(entry, "its CRC-32 checksum does not match its contents")
        }
        budget -= produced
    }

    // MARK: Checks

    private static func checkedEntry(
        _ zipEntry: Entry,
        _ record: ZipLayout.Record,
        limits: BundleLimits
    ) throws(VergeError) -> ArchiveEntry {
        guard let name = String(validating: record.nameBytes, as: UTF8.self) else {
            throw VergeError(.invalidBundle, "bundle entry \(record.displayName) has a name that is not valid UTF-8")
        }
        let quoted = Quoted.single(name)
        if zipEntry.type == .symlink {
            throw VergeError(
                .invalidBundle,
                "bundle entry \(quoted) is a symbolic link; bundles may contain only regular files and directories"
            )
        }
        if let mode = record.unixMode, ![0, 0o100000, 0o040000].contains(mode & 0o170000) {
            throw VergeError(
                .invalidBundle,
                "bundle entry \(quoted) is a special file (a device, pipe or socket); bundles may contain only regular "
                    + "files and directories"
            )
        }
        let isDirectory = zipEntry.type == .directory
        var path = name
        if isDirectory, path.hasSuffix("/") {
            path.removeLast()
        }
        if let problem = BundlePath.problem(path, maxLength: limits.maxPathLength) {
            throw VergeError(.invalidBundle, "bundle entry \(quoted) \(problem)")
        }
        let isExecutable = !isDirectory && (record.unixMode ?? 0) & 0o111 != 0
        return ArchiveEntry(path: path, isDirectory: isDirectory, isExecutable: isExecutable, record: record)
    }

    private static func readManifest(
        _ bytes: Data,
        _ entries: [ArchiveEntry],
        isDirectoryByPath: [BundlePath.Key: Bool]
    ) throws(VergeError) -> Manifest {
        let fileName = Manifest.fileName
        guard let entry = entries.first(where: { $0.path.utf8.elementsEqual(fileName.utf8) }) else {
            if let nested = entries.first(where: {
                !$0.isDirectory && $0.path.hasSuffix("/" + fileName) && BundlePath.ancestors(of: $0.path).count == 1
            }) {
                throw VergeError(
                    .invalidBundle,
                    "bundle has no \(fileName) at its root, but has \(Quoted.single(nested.path)): zip the contents "
                        + "of the function's folder, not the folder itself"
                )
            }
            throw VergeError(.invalidBundle, "bundle has no \(fileName) at its root")
        }
        if entry.isDirectory {
            throw VergeError(.invalidBundle, "bundle entry '\(fileName)' is a directory; it must be the manifest file")
        }
        if entry.record.uncompressedSize > BundleLimits.maxManifestBytes {
            throw VergeError(
                .invalidBundle,
                "\(fileName) is \(entry.record.uncompressedSize) bytes; the limit is "
                    + "\(BundleLimits.maxManifestBytes) bytes"
            )
        }
        var contents: [UInt8] = []
        var budget = BundleLimits.maxManifestBytes
        try readFile(entry, of: bytes, budget: &budget) { chunk throws(VergeError) in contents.append(contentsOf: chunk)
        }
        let manifest = try Manifest.parse(contents)

        let entryPath = manifest.entryPath
        switch isDirectoryByPath[BundlePath.Key(entryPath)] {
        case false?:
            return manifest
        case true?:
            throw VergeError(
                .invalidBundle,
                "bundle entry \(Quoted.single(entryPath)), which \(fileName) names as its entry, is a directory"
            )
        case nil:
            if manifest.runtime == .swift {
                throw VergeError(
                    .invalidBundle,
                    "bundle has no executable at \(Quoted.single(entryPath)): for runtime swift, the product named by "
                        + "\(fileName)'s entry \(Quoted.json(manifest.entry)) is packed at bin/<entry>"
                )
            }
            throw VergeError(
                .invalidBundle,
                "bundle has no file \(Quoted.single(entryPath)), which \(fileName) names as its entry"
            )
        }
    }

    private static var unreadable: VergeError {
        VergeError(.invalidBundle, "bundle archive is damaged: its central directory cannot be read")
    }

    private static func corrupt(_ entry: ArchiveEntry, _ detail: String) -> VergeError {
        VergeError(.invalidBundle, "bundle entry \(Quoted.single(entry.path)) is corrupt: \(detail)")
    }
}
