import Foundation

/// What a sandbox sees of the host's system, read-only at the same paths — not all of `/usr`, whose `bin`, `sbin`,
/// `local`, `share` and `libexec` hold the operator's tools and data: the shared libraries and the dynamic loader
/// (the directories of the C library and the loader this process runs with), the C.UTF-8 locale and the time zone
/// database; a runtime adds its own files (``python(_:)``; a Swift function brings its binary, and its runtime
/// libraries are shared apart).
public enum SystemView {
    /// The paths every sandbox gets.
    public static let base: [String] = {
        var paths: [String] = []
        for library in ["/libc.so.6", "/libc.so", "/ld-linux-x86-64.so.2", "/ld-linux-aarch64.so.1"] {
            if let directory = loadedLibraryDirectory(endingWith: library), !paths.contains(directory) {
                paths.append(directory)
            }
        }
        // The loader's own path (`/lib64/ld-linux-x86-64.so.2` is a link into `/usr/lib64` on merged-/usr systems).
        for path in ["/usr/lib64", "/usr/lib/locale/C.utf8", "/usr/share/zoneinfo"]
        where FileManager.default.fileExists(atPath: path) && !paths.contains(path) {
            paths.append(path)
        }
        return paths
    }()

    /// A Python interpreter's own files: the interpreter (its links resolved) and its standard library
    /// (`PREFIX/lib/pythonX.Y`, found from the interpreter's versioned name, else every `python3.*` there).
    /// An interpreter outside `/usr` brings its whole prefix instead (shared apart by the host).
    public static func python(_ interpreter: String) -> [String] {
        let resolved = URL(fileURLWithPath: interpreter).resolvingSymlinksInPath().path
        var paths = [resolved]
        let name = (resolved as NSString).lastPathComponent
        let prefix = ((resolved as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        let library = prefix + "/lib"
        if name.hasPrefix("python3."), FileManager.default.fileExists(atPath: library + "/" + name) {
            paths.append(library + "/" + name)
        } else {
            let versions = (try? FileManager.default.contentsOfDirectory(atPath: library)) ?? []
            paths += versions.filter { $0.hasPrefix("python3.") }.sorted().map { library + "/" + $0 }
        }
        return paths
    }

    /// The directory (links resolved) of the shared object mapped into this process whose path ends with `suffix`.
    static func loadedLibraryDirectory(endingWith suffix: String) -> String? {
        guard let maps = KernelFile.read("/proc/self/maps") else { return nil }
        for line in maps.split(separator: "\n") where line.hasSuffix(suffix) {
            guard let slash = line.firstIndex(of: "/") else { continue }
            return URL(fileURLWithPath: String(line[slash...])).resolvingSymlinksInPath().deletingLastPathComponent()
                .path
        }
        return nil
    }
}
