import Crypto
import Foundation
import Hummingbird
import NIOCore
import VergeCore

#if canImport(Glibc)
import Glibc
#endif

/// An upload written to a temporary file in the bundle store, with its SHA-256 and size.
struct ReceivedUpload: Sendable {
    let path: String
    let version: String
    let size: Int
}

extension BundleStore {
    /// Streams `body` into a temporary file (mode 0600) next to the bundles, hashing it on the way: no copy of the
    /// whole bundle is ever held in memory. More than `limit` bytes, or a body that breaks off, remove the file.
    func receive(_ body: RequestBody, limit: Int) async throws -> ReceivedUpload {
        let path = directory + "/.upload-" + UUID().uuidString
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VergeError(.internalError, "cannot store the upload: errno \(errno)") }
        var hash = SHA256()
        var size = 0
        do {
            defer { close(fd) }
            for try await chunk in body {
                size += chunk.readableBytes
                guard size <= limit else {
                    throw VergeError(.payloadTooLarge, "bundle exceeds the limit of \(limit) bytes")
                }
                try chunk.withUnsafeReadableBytes { bytes in
                    hash.update(bufferPointer: bytes)
                    var offset = 0
                    while offset < bytes.count {
                        let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                        guard written > 0 else {
                            throw VergeError(.internalError, "cannot store the upload: errno \(errno)")
                        }
                        offset += written
                    }
                }
            }
            guard fsync(fd) == 0 else { throw VergeError(.internalError, "cannot store the upload: errno \(errno)") }
        } catch let error as VergeError {
            unlink(path)
            throw error
        } catch {
            unlink(path)
            throw VergeError(.badRequest, "the upload broke off before its end", underlying: error)
        }
        let version = hash.finalize().map { String(format: "%02x", $0) }.joined()
        return ReceivedUpload(path: path, version: version, size: size)
    }

    /// Moves a checked upload into place as its version (or drops it when that version is stored already).
    func commit(_ upload: ReceivedUpload) throws {
        if contains(upload.version) {
            discard(upload)
            return
        }
        guard rename(upload.path, path(upload.version)) == 0 else {
            discard(upload)
            throw VergeError(.internalError, "cannot store bundle \(upload.version)")
        }
    }

    func discard(_ upload: ReceivedUpload) {
        unlink(upload.path)
    }

    /// A response body that sends `data` (a memory-mapped bundle) in 64 KiB buffers, never as one copy.
    static func streamed(_ data: Data) -> ResponseBody {
        ResponseBody(contentLength: data.count) { writer in
            var offset = 0
            while offset < data.count {
                let end = min(offset + 64 * 1024, data.count)
                try await writer.write(ByteBuffer(bytes: data[offset..<end]))
                offset = end
            }
            try await writer.finish(nil)
        }
    }
}
