import Foundation

/// Files that hold a credential: written with mode 0600 (created so, never widened), read back with a check that
/// nobody else can read them.
public enum SecretFile {
    /// Writes `secret` (and a newline) to `path` atomically, mode 0600.
    public static func write(_ secret: String, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VergeError(.internalError, "cannot write \(temporary): errno \(errno)") }
        let bytes = Array((secret + "\n").utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, 0o600)
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw VergeError(.internalError, "cannot write \(path)")
        }
    }

    /// The secret in `path` (trimmed), `nil` when the file does not exist. Refuses a file that group or others
    /// may read, naming the fix.
    public static func read(_ path: String) throws -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw VergeError(.internalError, "cannot read \(path): errno \(errno)")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw VergeError(
                .badRequest, "\(path) may be read by other users; run `chmod 600 \(path)` (it holds a credential)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw VergeError(.internalError, "cannot read \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw VergeError(.badRequest, "\(path) is empty") }
        return text
    }
}
