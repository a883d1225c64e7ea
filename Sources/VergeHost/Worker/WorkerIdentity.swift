import Foundation
import Synchronization
import VergeSupervisor

#if canImport(Glibc)
import Glibc
#endif

/// The user a function version's workers run as. When the host runs as root, every pool gets its own unprivileged
/// uid and gid (from 200000 up, with no login and no home), so a worker cannot signal the host or another
/// function's workers, read their `/proc` entries, or read or change another bundle. Its bundle is owned by root
/// with the pool's group, readable and not writable. Without root, workers run as the host's user.
enum WorkerIdentity {
    static let firstID: UInt32 = 200_000
    private static let next = Mutex<UInt32>(firstID)

    /// Whether this process can give workers their own identities.
    static var isAvailable: Bool { geteuid() == 0 }

    /// A fresh uid/gid pair, or `nil` when the host cannot switch users.
    static func allocate() -> ProcessSpec.Credentials? {
        guard isAvailable else { return nil }
        let id = next.withLock { id in
            defer { id = id == UInt32.max - 1 ? firstID : id + 1 }
            return id
        }
        return ProcessSpec.Credentials(uid: id, gid: id)
    }

    /// Gives the bundle at `directory` to root and `gid`: directories 0750, executables 0750, other files 0640.
    /// Symbolic links never reach here (bundles cannot contain them).
    static func restrict(bundle directory: String, to gid: UInt32) throws {
        func apply(_ path: String, isDirectory: Bool) throws {
            var info = stat()
            guard lstat(path, &info) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            let executable = info.st_mode & 0o100 != 0
            let mode: mode_t = isDirectory || executable ? 0o750 : 0o640
            guard chown(path, 0, gid) == 0, chmod(path, mode) == 0 else {
                throw POSIXError(.init(rawValue: errno) ?? .EPERM)
            }
        }
        try apply(directory, isDirectory: true)
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return }
        while let relative = enumerator.nextObject() as? String {
            let path = directory + "/" + relative
            let isDirectory = (enumerator.fileAttributes?[.type] as? FileAttributeType) == .typeDirectory
            try apply(path, isDirectory: isDirectory)
        }
    }

    /// Why workers under their own users could not reach `paths` (the bundle cache and the runtimes), or `nil` when
    /// they can: every directory from `/` down must let other users through (`o+x`).
    static func unreachable(_ paths: [String]) -> String? {
        for path in paths {
            var current = URL(fileURLWithPath: path).standardizedFileURL
            var chain: [String] = []
            while current.path != "/" {
                chain.append(current.path)
                current.deleteLastPathComponent()
            }
            for directory in chain.reversed().dropLast() {
                var info = stat()
                guard stat(directory, &info) == 0 else { continue }
                if info.st_mode & 0o001 == 0 {
                    return "\(directory) does not let other users through (mode \(String(info.st_mode & 0o777, radix: 8)))"
                }
            }
        }
        return nil
    }

    /// Makes a host's data directory traversable but not listable, and its databases private to root.
    static func protect(dataDirectory: String) {
        guard isAvailable else { return }
        chmod(dataDirectory, 0o711)
        try? FileManager.default.createDirectory(atPath: dataDirectory + "/bundles", withIntermediateDirectories: true)
        chmod(dataDirectory + "/bundles", 0o711)
        for suffix in ["", "-wal", "-shm"] { chmod(dataDirectory + "/host.sqlite" + suffix, 0o600) }
        chmod(dataDirectory + "/deployments.json", 0o600)
    }
}
