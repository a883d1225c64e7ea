import Foundation

/// Finds the `Runtime/` directory that holds the in-worker runtimes: `$VERGE_RUNTIME_DIR`, then walking up from
/// the executable (it lives in `.build/…/verge` inside the checkout), then walking up from the working directory.
enum RuntimeLocator {
    static func locate(explicit: String?) throws -> String {
        let marker = "python/verge_worker.py"
        if let explicit {
            guard FileManager.default.fileExists(atPath: explicit + "/" + marker) else {
                throw VergeCLIError("\(explicit) has no \(marker)")
            }
            return absolute(explicit)
        }
        if let fromEnvironment = ProcessInfo.processInfo.environment["VERGE_RUNTIME_DIR"],
            FileManager.default.fileExists(atPath: fromEnvironment + "/" + marker)
        {
            return absolute(fromEnvironment)
        }
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        for start in [
            URL(fileURLWithPath: executable).deletingLastPathComponent(),
            URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
        ] {
            var directory = start
            for _ in 0..<8 {
                let candidate = directory.appendingPathComponent("Runtime")
                if FileManager.default.fileExists(atPath: candidate.path + "/" + marker) { return candidate.path }
                directory = directory.deletingLastPathComponent()
            }
        }
        throw VergeCLIError("cannot find the Verge runtimes; pass --runtime-dir or set VERGE_RUNTIME_DIR")
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
