import Foundation
import VergeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

#if canImport(Glibc)
private let systemWrite = Glibc.write
private let systemRename = Glibc.rename
#elseif canImport(Musl)
private let systemWrite = Musl.write
private let systemRename = Musl.rename
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
private let systemRename = Darwin.rename
#endif

/// The few POSIX file operations packing and unpacking need, with exact modes (no umask, no symlink following)
/// and errors as `VergeError`s of a code chosen by the caller.
enum FileSystem {
    enum Kind: Equatable {
        case file(size: Int, isExecutable: Bool)
        case directory
        case symbolicLink
        case other
    }

    /// What is at `path`, or `nil` when nothing is. Symbolic links are reported, not followed, unless `followLinks`.
    static func kind(_ path: String, followLinks: Bool = false) -> Kind? {
        var info = stat()
        let result = followLinks ? stat(path, &info) : lstat(path, &info)
        guard result == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file(size: Int(info.st_size), isExecutable: info.st_mode & 0o111 != 0)
        case S_IFDIR: return .directory
        case S_IFLNK: return .symbolicLink
        default: return .other
        }
    }

    /// Whether anything, even a dangling symbolic link, is at `path`.
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 || errno != ENOENT
    }

    static func contentsOfDirectory(_ path: String, code: VergeError.Code) throws(VergeError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw VergeError(code, "cannot read directory \(Quoted.single(path))", underlying: error)
        }
    }

    static func readFile(_ path: String, code: VergeError.Code) throws(VergeError) -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw VergeError(code, "cannot read \(Quoted.single(path))", underlying: error)
        }
    }

    static func createDirectories(_ path: String) throws(VergeError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw VergeError(.internalError, "cannot create directory \(Quoted.single(path))", underlying: error)
        }
    }

    /// Creates one directory with exactly `mode`; fails if anything is already there.
    static func makeDirectory(_ path: String, mode: mode_t) throws(VergeError) {
        guard mkdir(path, mode) == 0 else { throw failure("create directory", path) }
        guard chmod(path, mode) == 0 else { throw failure("set the mode of", path) }
    }

    static func setMode(_ path: String, _ mode: mode_t) throws(VergeError) {
        guard chmod(path, mode) == 0 else { throw failure("set the mode of", path) }
    }

    /// Creates a new file (never following a symbolic link, never opening an existing file), hands `body` a
    /// writer, then sets exactly `mode`; the file is closed also when `body` throws.
    static func withNewFile(
        _ path: String,
        mode: mode_t,
        _ body: (inout Writer) throws(VergeError) -> Void
    ) throws(VergeError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("create", path) }
        defer { close(descriptor) }
        var writer = Writer(descriptor: descriptor, path: path)
        try body(&writer)
        guard fchmod(descriptor, mode) == 0 else { throw failure("set the mode of", path) }
    }

    struct Writer {
        fileprivate let descriptor: Int32
        fileprivate let path: String

        mutating func write(_ data: Data) throws(VergeError) {
            let failed: Bool = data.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = systemWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return true
                    }
                    offset += written
                }
                return false
            }
            if failed { throw FileSystem.failure("write", path) }
        }
    }

    static func rename(_ source: String, to destination: String) throws(VergeError) {
        guard systemRename(source, destination) == 0 else {
            throw failure("move \(Quoted.single(source)) to", destination)
        }
    }

    /// Removes a directory tree, ignoring errors (used to clean up after a failure).
    static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    static func failure(_ action: String, _ path: String) -> VergeError {
        let reason = String(cString: strerror(errno))
        return VergeError(.internalError, "cannot \(action) \(Quoted.single(path)): \(reason)")
    }
}
