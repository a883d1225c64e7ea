import Foundation
import Synchronization
import VergeCore

#if canImport(Glibc)
import Glibc
#endif

/// One worker's cgroup: every process of the worker is in it from before its first instruction (see
/// `verge-sandbox-exec`), so its limits hold for all of them, its usage counts all of them, and killing it kills all
/// of them, including processes that left the worker's session or double-forked.
public final class WorkerCgroup: Sendable {
    public let version: CgroupHierarchy.Version
    /// Controller name → directory (v2: a single entry).
    let directories: [String: String]
    /// The counters as they were when the group was removed: a call that ended because its worker died may ask
    /// what killed it after the host has already reaped the worker and removed its group.
    private let final = Mutex<Counters?>(nil)
    /// The counter files every call reads, opened once and kept for the worker's life (reads and writes at offset
    /// 0, no path lookups); closed by ``remove()``. Used under the lock, so a file is never read after it closed.
    private let callFiles = Mutex<CallFiles>(CallFiles())

    private struct CallFiles {
        var opened = false
        var closed = false
        /// v1 `cpuacct.usage`, v2 `cpu.stat`.
        var cpu: Int32 = -1
        /// v1 `memory.max_usage_in_bytes`; -1 on v2.
        var peak: Int32 = -1
    }

    struct Counters {
        var oomKills: Int
        var processLimitHits: Int
        var cpuUsage: Duration?
        var memoryPeak: Int64?
    }

    init(version: CgroupHierarchy.Version, directories: [String: String]) {
        self.version = version
        self.directories = directories
    }

    /// The same group under a new name (in each hierarchy, in the same parent directory), for a group made before
    /// its worker was known: renaming moves no process and costs no grace period. Where the kernel refuses (cgroup
    /// v2 has no rename), throws, and the group keeps its name. Use the returned group from then on.
    func renamed(to name: String) throws(VergeError) -> WorkerCgroup {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw VergeError(.internalError, "invalid cgroup name '\(name)'")
        }
        var moved: [(from: String, to: String)] = []
        for directory in Set(directories.values).sorted() {
            let target = (directory as NSString).deletingLastPathComponent + "/" + name
            _ = rmdir(target)  // a leftover of a crashed worker with the same name
            guard Glibc.rename(directory, target) == 0 else {
                let reason = String(cString: strerror(errno))
                for (from, to) in moved.reversed() { _ = Glibc.rename(to, from) }
                throw VergeError(.internalError, "cannot rename the cgroup \(directory) to \(name): \(reason)")
            }
            moved.append((directory, target))
        }
        let renamed = Dictionary(uniqueKeysWithValues: moved)
        return WorkerCgroup(version: version, directories: directories.mapValues { renamed[$0] ?? $0 })
    }

    /// The `cgroup.procs` files a new process writes its pid to, to join the group.
    public var joinFiles: [String] { Set(directories.values).sorted().map { $0 + "/cgroup.procs" } }

    private var memory: String { directories["memory"]! }
    private var pids: String { directories["pids"] ?? memory }
    private var cpu: String { directories["cpuacct"] ?? memory }
    private var cpuControl: String { directories["cpu"] ?? memory }
    private var freezer: String { directories["freezer"] ?? memory }

    func apply(_ limits: SandboxLimits) throws(VergeError) {
        func set(_ value: String, _ file: String, required: Bool = true) throws(VergeError) {
            guard write(value, to: file) || !required else {
                throw VergeError(.internalError, "cannot set \(file) to \(value): \(String(cString: strerror(errno)))")
            }
        }
        switch version {
        case .v2:
            try set("\(limits.memoryBytes)", memory + "/memory.max")
            try set("0", memory + "/memory.swap.max", required: FileManager.default.fileExists(atPath: memory + "/memory.swap.max"))
            try set("\(limits.processes)", memory + "/pids.max")
            try set("\(Int(limits.cpuCores * 100_000)) 100000", memory + "/cpu.max")
        case .v1:
            try set("\(limits.memoryBytes)", memory + "/memory.limit_in_bytes")
            // With swap accounting, memory + swap is capped at the same value: a worker cannot swap out.
            if FileManager.default.fileExists(atPath: memory + "/memory.memsw.limit_in_bytes") {
                try set("\(limits.memoryBytes)", memory + "/memory.memsw.limit_in_bytes")
            }
            try set("\(limits.processes)", pids + "/pids.max")
            try set("100000", cpuControl + "/cpu.cfs_period_us")
            try set("\(Int(limits.cpuCores * 100_000))", cpuControl + "/cpu.cfs_quota_us")
        }
    }

    // MARK: Accounting

    /// CPU time (user + system) all the worker's processes have used.
    public func cpuUsage() -> Duration? {
        if let final = final.withLock({ $0 }) { return final.cpuUsage }
        switch version {
        case .v2:
            guard let text = read(memory + "/cpu.stat") else { return nil }
            for line in text.split(separator: "\n") where line.hasPrefix("usage_usec ") {
                return Int64(line.dropFirst(11)).map { .microseconds($0) }
            }
            return nil
        case .v1:
            return read(cpu + "/cpuacct.usage").flatMap(Int64.init).map { .nanoseconds($0) }
        }
    }

    /// The most memory the worker has used at once since it started, in bytes.
    public func memoryPeak() -> Int64? {
        if let final = final.withLock({ $0 }) { return final.memoryPeak }
        return switch version {
        case .v2: read(memory + "/memory.peak").flatMap(Int64.init)
        case .v1: read(memory + "/memory.max_usage_in_bytes").flatMap(Int64.init)
        }
    }

    /// Memory in use now, in bytes.
    public func memoryCurrent() -> Int64? {
        switch version {
        case .v2: read(memory + "/memory.current").flatMap(Int64.init)
        case .v1: read(memory + "/memory.usage_in_bytes").flatMap(Int64.init)
        }
    }

    /// What ``beginCall()`` noted; hand it to ``endCall(_:)`` exactly once.
    public struct CallStart: Sendable, Equatable {
        /// CPU time (user + system) of the whole group when the call began.
        public var cpu: Duration
        /// cgroup v2 on kernels from 6.12: an open `memory.peak` whose peak was reset for this descriptor; -1
        /// otherwise.
        var peakFile: Int32
    }

    /// Notes the counters at the start of a call and makes the memory peak read at its end the call's own:
    /// - cgroup v1: writes 0 to `memory.max_usage_in_bytes`, which resets the group's high-water mark;
    /// - cgroup v2 from kernel 6.12: opens `memory.peak` and writes to it, which resets the peak seen through that
    ///   descriptor only (other readers are unaffected);
    /// - older v2 kernels cannot reset it: the peak read at the end is then the worker's high-water mark since it
    ///   started, an upper bound of the call's.
    /// Cheap: the counter files stay open for the worker's life, so a call costs one `pwrite` and one `pread` at
    /// its start and two `pread`s at its end (v1), into a stack buffer, no strings.
    public func beginCall() -> CallStart? {
        switch version {
        case .v1:
            let cpu = withCallFiles { files -> Int? in
                _ = pwrite(files.peak, "0", 1, 0)
                return integer(fd: files.cpu)
            }
            return cpu.flatMap { $0 }.map { CallStart(cpu: .nanoseconds($0), peakFile: -1) }
        case .v2:
            var peakFile: Int32 = -1
            let fd = open(memory + "/memory.peak", O_RDWR | O_CLOEXEC)
            if fd >= 0 {
                let reset: StaticString = "reset\n"
                if Glibc.write(fd, reset.utf8Start, reset.utf8CodeUnitCount) == reset.utf8CodeUnitCount {
                    peakFile = fd
                } else {
                    close(fd)  // a kernel before 6.12: the file is read-only
                }
            }
            guard let cpu = withCallFiles({ optionalCounter("usage_usec", fd: $0.cpu) }).flatMap({ $0 }) else {
                if peakFile >= 0 { close(peakFile) }
                return nil
            }
            return CallStart(cpu: .microseconds(cpu), peakFile: peakFile)
        }
    }

    /// The CPU time the group used since `start` and its memory peak during the call (see ``beginCall()``); the
    /// counters as they were when the group was removed, if it was. Releases what `start` holds.
    public func endCall(_ start: CallStart) -> (cpu: Duration, memoryPeak: Int64)? {
        defer { if start.peakFile >= 0 { close(start.peakFile) } }
        let now: (cpu: Duration?, peak: Int?)? = withCallFiles { files in
            switch version {
            case .v1:
                return (integer(fd: files.cpu).map { .nanoseconds($0) }, integer(fd: files.peak))
            case .v2:
                let peak = start.peakFile >= 0 ? integer(fd: start.peakFile) : integer(in: memory + "/memory.peak")
                return (optionalCounter("usage_usec", fd: files.cpu).map { .microseconds($0) }, peak)
            }
        }
        guard let now else {
            // The group is gone: its counters as they were when it was removed.
            guard let final = final.withLock({ $0 }), let cpu = final.cpuUsage else { return nil }
            return (max(.zero, cpu - start.cpu), final.memoryPeak ?? 0)
        }
        guard let cpu = now.cpu else { return nil }
        return (max(.zero, cpu - start.cpu), Int64(now.peak ?? 0))
    }

    /// Runs `body` with the open counter files (opening them the first time); nil once the group was removed or
    /// when they cannot be opened.
    private func withCallFiles<T>(_ body: (CallFiles) -> T) -> T? {
        callFiles.withLock { files -> T? in
            if files.closed { return nil }
            if !files.opened {
                files.opened = true
                switch version {
                case .v1:
                    files.cpu = open(cpu + "/cpuacct.usage", O_RDONLY | O_CLOEXEC)
                    files.peak = open(memory + "/memory.max_usage_in_bytes", O_RDWR | O_CLOEXEC)
                case .v2:
                    files.cpu = open(memory + "/cpu.stat", O_RDONLY | O_CLOEXEC)
                }
            }
            guard files.cpu >= 0, version == .v2 || files.peak >= 0 else { return nil }
            return body(files)
        }
    }

    private func closeCallFiles() {
        callFiles.withLock { files in
            if files.cpu >= 0 { close(files.cpu) }
            if files.peak >= 0 { close(files.peak) }
            files = CallFiles(opened: true, closed: true)
        }
    }

    /// Closes what `start` holds, for a call whose end is never measured.
    public func discard(_ start: CallStart) {
        if start.peakFile >= 0 { close(start.peakFile) }
    }

    /// A file holding one decimal integer, read into a stack buffer.
    private func integer(in file: String) -> Int? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return integer(fd: fd)
    }

    /// The decimal integer at the start of the open file `fd` (read from offset 0).
    private func integer(fd: Int32) -> Int? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer -> Int? in
            let count = pread(fd, buffer.baseAddress, buffer.count, 0)
            guard count > 0 else { return nil }
            var value = 0
            var digits = 0
            for byte in buffer[0..<count] {
                guard (48...57).contains(byte) else { break }
                value = value &* 10 &+ Int(byte - 48)
                digits += 1
            }
            return digits > 0 ? value : nil
        }
    }

    /// How often the kernel's OOM killer ended a process of the worker.
    public func oomKills() -> Int {
        if let final = final.withLock({ $0 }) { return final.oomKills }
        let file = version == .v2 ? memory + "/memory.events" : memory + "/memory.oom_control"
        return counter("oom_kill", in: file)
    }

    /// How often a fork or clone failed because the worker was at its process limit.
    public func processLimitHits() -> Int {
        if let final = final.withLock({ $0 }) { return final.processLimitHits }
        return counter("max", in: pids + "/pids.events")
    }

    /// The value of `name` in a flat-keyed cgroup file (`key value` lines). Read on every call's start, so it
    /// stays cheap: one small read into a stack buffer, no strings.
    private func counter(_ name: String, in file: String) -> Int {
        optionalCounter(name, in: file) ?? 0
    }

    /// The value of `name` in a flat-keyed cgroup file, nil when the file or the key is missing.
    private func optionalCounter(_ name: String, in file: String) -> Int? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return optionalCounter(name, fd: fd)
    }

    /// The value of `name` in the open flat-keyed cgroup file `fd` (read from offset 0).
    private func optionalCounter(_ name: String, fd: Int32) -> Int? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer -> Int? in
            let count = pread(fd, buffer.baseAddress, buffer.count, 0)
            guard count > 0 else { return nil }
            let bytes = UnsafeBufferPointer(rebasing: buffer[0..<count])
            let key = Array(name.utf8) + [UInt8(ascii: " ")]
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
                if lineEnd - lineStart > key.count, bytes[lineStart..<lineStart + key.count].elementsEqual(key) {
                    var value = 0
                    for byte in bytes[(lineStart + key.count)..<lineEnd] where (48...57).contains(byte) {
                        value = value * 10 + Int(byte - 48)
                    }
                    return value
                }
                lineStart = lineEnd + 1
            }
            return nil
        }
    }

    /// The pids of the worker's processes now.
    public func processes() -> [Int32] {
        (read(pids + "/cgroup.procs") ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    // MARK: Ending

    /// Sends `signal` to every process in the group.
    public func signalAll(_ signal: Int32) {
        for pid in processes() where pid > 0 { kill(pid, signal) }
    }

    /// Kills every process in the group, including those that are forking as fast as they can: v2 writes
    /// `cgroup.kill`; v1 freezes the group, kills what is in it, and thaws it so the kills are delivered.
    public func killAll() {
        switch version {
        case .v2:
            if write("1", to: memory + "/cgroup.kill") { return }
            signalAll(SIGKILL)  // kernels before 5.14
        case .v1:
            let frozen = write("FROZEN", to: freezer + "/freezer.state")
            if frozen {
                // The state reads FREEZING until every task is stopped; bounded, as a task in an
                // uninterruptible sleep can delay it.
                for _ in 0..<200 where read(freezer + "/freezer.state") != "FROZEN" { usleep(500) }
            }
            signalAll(SIGKILL)
            if frozen { write("THAWED", to: freezer + "/freezer.state") }
        }
    }

    /// Removes the group's directories; a group that still has processes is killed first. Returns whether every
    /// directory is gone (a process still exiting keeps its group until it is reaped).
    @discardableResult
    public func remove() -> Bool {
        if !processes().isEmpty { killAll() }
        if final.withLock({ $0 }) == nil {
            let counters = Counters(
                oomKills: oomKills(), processLimitHits: processLimitHits(), cpuUsage: cpuUsage(),
                memoryPeak: memoryPeak())
            final.withLock { $0 = $0 ?? counters }
        }
        closeCallFiles()
        var removed = true
        for directory in Set(directories.values) where rmdir(directory) != 0 && errno != ENOENT {
            removed = false
        }
        return removed
    }
}
