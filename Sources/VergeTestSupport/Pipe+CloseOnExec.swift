import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Pipe {
    /// The pipe with close-on-exec set on both ends. Foundation opens pipes without it, so every process the test
    /// process starts meanwhile (a supervisor's worker, another test's cluster) would inherit this one's ends; a
    /// `Process` still gets its own ends, which it installs as the child's stdio.
    public func closingOnExec() -> Pipe {
        _ = fcntl(fileHandleForReading.fileDescriptor, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fileHandleForWriting.fileDescriptor, F_SETFD, FD_CLOEXEC)
        return self
    }
}

extension FileHandle {
    /// The handle with close-on-exec set (see ``Foundation/Pipe/closingOnExec()``).
    public func closingOnExec() -> FileHandle {
        _ = fcntl(fileDescriptor, F_SETFD, FD_CLOEXEC)
        return self
    }
}
