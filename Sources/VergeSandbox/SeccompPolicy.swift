import CVergeSeccomp
import Foundation
import VergeCore

/// The system calls a function never needs. Each fails with EPERM, as does `clone` with a namespace flag; `clone3`
/// fails with ENOSYS so the C library falls back to `clone`, whose flags the filter can inspect. Sockets of other
/// families than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK fail with EAFNOSUPPORT (AF_VSOCK, for one, ignores
/// network namespaces). System calls of other architectures' entry points kill the process.
public enum SeccompPolicy {
    public static let denied: [String] = [
        // Debugging and inspecting other processes.
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
        // Mounts and namespaces.
        "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount", "fsopen",
        "fsconfig", "fsmount", "fspick", "mount_setattr",
        // The kernel itself.
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
        "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog", "quotactl",
        "lookup_dcookie", "iopl", "ioperm", "personality", "uselib", "sethostname", "setdomainname",
        // Keys, BPF, performance counters, page-fault handling, raw handles.
        "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "open_by_handle_at",
        "name_to_handle_at", "fanotify_init",
        // io_uring: a large kernel surface whose operations bypass seccomp's argument checks.
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        // Watching shared files would show what other workers start and load; segment tricks and secret memory.
        "inotify_init", "inotify_init1", "inotify_add_watch", "modify_ldt", "memfd_secret",
    ]

    /// The compiled BPF program, built once per process.
    public static func program() throws(VergeError) -> [UInt8] {
        try cached.get()
    }

    private static let cached: Result<[UInt8], VergeError> = Result { () throws(VergeError) -> [UInt8] in
        try build(denied: denied)
    }

    static func build(denied: [String]) throws(VergeError) -> [UInt8] {
        var pointers = denied.map { strdup($0) }
        defer { for pointer in pointers { free(pointer) } }
        var program: UnsafeMutablePointer<UInt8>?
        var length = 0
        var unknown: UnsafePointer<CChar>?
        let rc = pointers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { names in
                verge_seccomp_build(names, buffer.count, EPERM, &program, &length, &unknown)
            }
        }
        guard rc == 0, let program else {
            if let unknown {
                throw VergeError(.internalError, "seccomp: unknown system call '\(String(cString: unknown))'")
            }
            throw VergeError(.internalError, "cannot build the seccomp filter: \(String(cString: strerror(-rc)))")
        }
        defer { free(program) }
        return Array(UnsafeBufferPointer(start: program, count: length))
    }
}
