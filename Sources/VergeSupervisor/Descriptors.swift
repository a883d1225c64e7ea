import CLibUV
import VergeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Descriptor helpers for wiring a worker.
///
/// Every descriptor is created close-on-exec, so no other concurrently spawned child inherits it; spawning
/// `dup2()`s the chosen ones into the child's slots, which clears the flag there.
public enum Descriptors {
    /// A connected pair of `AF_UNIX`, `SOCK_STREAM` sockets: one end for the host, one for the worker.
    public static func socketPair() throws(VergeError) -> (parent: Int32, child: Int32) {
        var fds: [Int32] = [-1, -1]
        #if canImport(Darwin)
        // No SOCK_CLOEXEC here: set the flag right after (not atomic, but Darwin is for development only).
        let rc = socketpair(AF_UNIX, SOCK_STREAM, 0, &fds)
        if rc == 0 { for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } }
        #else
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        #endif
        guard rc == 0 else {
            throw VergeError(.internalError, "cannot create a socket pair: \(String(cString: strerror(errno)))")
        }
        return (fds[0], fds[1])
    }

    /// A pipe: `read` for the host, `write` for the worker's stdout or stderr.
    public static func pipe() throws(VergeError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        #if canImport(Darwin)
        let rc = Darwin.pipe(&fds)
        if rc == 0 { for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } }
        #else
        let rc = verge_pipe_cloexec(&fds)
        #endif
        guard rc == 0 else {
            throw VergeError(.internalError, "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        return (fds[0], fds[1])
    }

    /// Marks every open descriptor above 2 close-on-exec. A process that spawns workers calls this once at
    /// start-up, so descriptors it inherited from whoever launched it never reach a worker (libuv's spawn does not
    /// close them in the child).
    public static func markAllCloseOnExec() {
        #if os(Linux)
        guard let directory = opendir("/proc/self/fd") else { return }
        defer { closedir(directory) }
        let own = dirfd(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), fd > 2, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
        #endif
    }

    /// Closes `fd`. Not retried on EINTR: on Linux the descriptor is released even then.
    public static func close(_ fd: Int32) {
        guard fd >= 0 else { return }
        #if canImport(Darwin)
        _ = Darwin.close(fd)
        #elseif canImport(Musl)
        _ = Musl.close(fd)
        #else
        _ = Glibc.close(fd)
        #endif
    }
}
