import Crypto
import Foundation
import VergeCore

#if canImport(Glibc)
import Glibc
#endif

/// The control plane's secret key: 32 random bytes as 64 hex digits in a file only its owner can read. Created
/// (mode 0600) on first start when absent; a file others can read, or one that does not hold a key, is refused.
enum SecretKeyFile {
    static func loadOrCreate(path: String) throws -> SymmetricKey {
        if FileManager.default.fileExists(atPath: path) {
            return try load(path: path)
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let key = SymmetricKey(size: .bits256)
        let hex = key.withUnsafeBytes { bytes in bytes.map { String(format: "%02x", $0) }.joined() } + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { return try load(path: path) }  // another process created it first
            throw VergeError(
                .internalError, "cannot create the secret key file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Array(hex.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            unlink(path)
            throw VergeError(.internalError, "cannot write the secret key file \(path)")
        }
        return key
    }

    static func load(path: String) throws -> SymmetricKey {
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw VergeError(.internalError, "the secret key file \(path) is not a regular file")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw VergeError(
                .internalError,
                "the secret key file \(path) can be read by others (mode \(String(status.st_mode & 0o777, radix: 8))); "
                    + "run chmod 600 on it")
        }
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw VergeError(.internalError, "cannot read the secret key file \(path)")
        }
        let hex = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex),
            let byte = UInt8(hex[index..<next], radix: 16)
        {
            bytes.append(byte)
            index = next
        }
        guard bytes.count == 32, index == hex.endIndex else {
            throw VergeError(.internalError, "the secret key file \(path) does not hold 64 hex digits")
        }
        return SymmetricKey(data: bytes)
    }
}
