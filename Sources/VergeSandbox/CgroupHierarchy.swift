import Foundation
import VergeCore

#if canImport(Glibc)
import Glibc
#endif

/// Where a host makes its workers' cgroups, on cgroup v2 (the unified hierarchy with the memory, pids and cpu
/// controllers) or, where the controllers are still on v1 hierarchies, on the v1 `memory`, `pids`, `cpuacct` and
/// `freezer` hierarchies. Every worker gets a group of its own under `<host's cgroup>/verge/<host>-<pid>`.
public struct CgroupHierarchy: Sendable {
    public enum Version: String, Sendable { case v1, v2 }

    public let version: Version
    /// v2: the one directory under which worker groups are made. v1: one directory per controller.
    let bases: [Controller: String]

    enum Controller: String, Sendable, CaseIterable {
        case memory, pids, cpu, cpuacct, freezer
        /// The v2 name of the controller, where it differs.
        static let v2Required = ["memory", "pids", "cpu"]
    }

    /// Finds the controllers and prepares this host's directory. Throws, saying what is missing, when the memory
    /// and pids controllers cannot be used.
    public static func prepare(
        hostName: String, mountInfo: String = "/proc/self/mountinfo", ownCgroup: String = "/proc/self/cgroup"
    ) throws(VergeError) -> CgroupHierarchy {
        let mounts = Self.cgroupMounts(read(mountInfo) ?? "")
        let membership = Self.membership(read(ownCgroup) ?? "")
        let leaf = "verge/\(hostName)-\(getpid())"
        if let unified = mounts.v2, let controllers = read(unified + "/cgroup.controllers"),
            Controller.v2Required.allSatisfy(controllers.split(separator: " ").map(String.init).contains)
        {
            let own = unified + (membership[""] ?? "/")
            let base = try prepareV2(own: own, leaf: leaf)
            return CgroupHierarchy(version: .v2, bases: [.memory: base])
        }
        var bases: [Controller: String] = [:]
        for controller in Controller.allCases {
            guard let mount = mounts.v1[controller.rawValue] else {
                throw VergeError(
                    .internalError,
                    "no cgroup controller '\(controller.rawValue)': mount cgroup v2 with memory, pids and cpu enabled, "
                        + "or the v1 memory, pids, cpu, cpuacct and freezer hierarchies")
            }
            let own = mount.path + (membership[mount.key] ?? "/")
            let base = own.hasSuffix("/") ? own + leaf : own + "/" + leaf
            do {
                try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
            } catch {
                throw VergeError(.internalError, "cannot create the cgroup \(base): \(error.localizedDescription)")
            }
            bases[controller] = base
        }
        let memory = bases[.memory]!
        // Children account hierarchically (always on in newer kernels; older ones need it set before children).
        _ = write("1", to: memory + "/memory.use_hierarchy")
        return CgroupHierarchy(version: .v1, bases: bases)
    }

    /// On v2 a cgroup with processes cannot hand controllers to children (the "no internal processes" rule), so
    /// the host moves itself into a leaf `verge-host` first when its own cgroup is not the root.
    private static func prepareV2(own: String, leaf: String) throws(VergeError) -> String {
        let enable = "+memory +pids +cpu"
        func enableControllers(_ directory: String) -> Bool {
            Controller.v2Required.allSatisfy { controller in
                write("+\(controller)", to: directory + "/cgroup.subtree_control")
            }
        }
        if !enableControllers(own) {
            let hostLeaf = own + "/verge-host"
            try? FileManager.default.createDirectory(atPath: hostLeaf, withIntermediateDirectories: true)
            guard write("\(getpid())", to: hostLeaf + "/cgroup.procs"), enableControllers(own) else {
                throw VergeError(
                    .internalError, "cannot enable '\(enable)' for the cgroups under \(own); delegate them to the host")
            }
        }
        var directory = own
        for component in leaf.split(separator: "/") {
            directory += "/" + component
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            guard enableControllers(directory) else {
                throw VergeError(.internalError, "cannot enable '\(enable)' in \(directory)")
            }
        }
        return directory
    }

    /// A new, empty group for one worker, with its limits applied; `nil` leaves the kernel's defaults (no limits)
    /// until ``WorkerCgroup/apply(_:)``, for a group made before its worker is known (a parked helper's).
    public func makeGroup(name: String, limits: SandboxLimits?) throws(VergeError) -> WorkerCgroup {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw VergeError(.internalError, "invalid cgroup name '\(name)'")
        }
        var directories: [String: String] = [:]
        var made: [String] = []
        // Hierarchies mounted together (cpu,cpuacct) share one directory.
        for (controller, base) in bases.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let directory = base + "/" + name
            if !made.contains(directory) {
                _ = rmdir(directory)  // a leftover of a crashed worker with the same name
                guard mkdir(directory, 0o755) == 0 else {
                    let reason = String(cString: strerror(errno))
                    for path in made { rmdir(path) }
                    throw VergeError(.internalError, "cannot create the cgroup \(directory): \(reason)")
                }
                made.append(directory)
            }
            directories[controller.rawValue] = directory
        }
        let group = WorkerCgroup(version: version, directories: directories)
        guard let limits else { return group }
        do {
            try group.apply(limits)
        } catch {
            group.remove()
            throw error
        }
        return group
    }

    /// Removes this host's directories at shutdown, once every worker is gone (groups that still have processes
    /// stay; the next host to start removes them).
    public func removeOwn() {
        for base in Set(bases.values) {
            for child in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where !child.contains(".") {
                rmdir(base + "/" + child)
            }
            rmdir(base)
        }
    }

    /// Removes the directories left by hosts that died.
    public func removeStale() {
        for base in bases.values {
            let parent = (base as NSString).deletingLastPathComponent
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { continue }
            for entry in entries {
                guard let dash = entry.lastIndex(of: "-"), let pid = Int32(entry[entry.index(after: dash)...]),
                    pid != getpid(), kill(pid, 0) != 0, errno == ESRCH
                else { continue }
                let directory = parent + "/" + entry
                for child in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                where !child.contains(".") {
                    rmdir(directory + "/" + child)
                }
                rmdir(directory)
            }
        }
    }

    // MARK: Reading /proc

    struct Mounts {
        var v2: String?
        /// Controller → the mount point of its v1 hierarchy and the hierarchy's key in /proc/self/cgroup.
        var v1: [String: (path: String, key: String)] = [:]
    }

    static func cgroupMounts(_ mountInfo: String) -> Mounts {
        var mounts = Mounts()
        for line in mountInfo.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let fields = halves[0].split(separator: " ")
            let tail = halves[1].split(separator: " ")
            guard fields.count >= 5, tail.count >= 3 else { continue }
            let mountPoint = String(fields[4])
            switch tail[0] {
            case "cgroup2":
                if mounts.v2 == nil { mounts.v2 = mountPoint }
            case "cgroup":
                let options = tail[2].split(separator: ",").map(String.init)
                let controllers = options.filter { Controller(rawValue: $0) != nil || $0 == "cpu" }
                let key = controllers.sorted().joined(separator: ",")
                for controller in controllers where mounts.v1[controller] == nil {
                    mounts.v1[controller] = (mountPoint, key)
                }
            default:
                continue
            }
        }
        return mounts
    }

    /// Hierarchy key (sorted controller list; "" for v2) → this process's path in it.
    static func membership(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let key = parts[1].split(separator: ",").map(String.init).sorted().joined(separator: ",")
            result[key] = String(parts[2])
        }
        return result
    }
}

func read(_ path: String) -> String? {
    KernelFile.read(path)?.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Reads files of procfs and cgroupfs, which report a size of 0 or 4096 whatever they hold (Foundation's readers
/// trust that size and stop early): read(2) until it returns 0.
public enum KernelFile {
    public static func read(_ path: String, limit: Int = 16 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while bytes.count < limit {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return count == 0 ? String(decoding: bytes, as: UTF8.self) : nil }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Writes `value` to a cgroup file with one write(2), as the kernel expects. Returns whether it was accepted.
@discardableResult
func write(_ value: String, to path: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let bytes = Array(value.utf8)
    return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
}
