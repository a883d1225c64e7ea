import VergeCore

/// The `limits` object of `verge.json`: resource limits of each worker beyond `memory_mb` and `timeout_ms`. Every key
/// is optional; the host's defaults fill what is left out.
///
/// ```json
/// "limits": { "cpu_ms": 2000, "processes": 32, "open_files": 256, "file_size_mb": 16, "tmp_mb": 32 }
/// ```
public struct ManifestLimits: Codable, Sendable, Equatable {
    /// CPU time (user + system, all threads and processes) one call may use, in ms (`cpu_ms`, 1–900000).
    public var cpuMs: Int?
    /// Processes and threads a worker may have at once (`processes`, 1–4096).
    public var processes: Int?
    /// Open files per process (`open_files`, 16–65536).
    public var openFiles: Int?
    /// Largest file a worker may write, in MiB (`file_size_mb`, 1–10240).
    public var fileSizeMB: Int?
    /// Size of the worker's private `/tmp`, in MiB (`tmp_mb`, 1–10240); it counts against `memory_mb`.
    public var tmpMB: Int?

    public init(cpuMs: Int? = nil, processes: Int? = nil, openFiles: Int? = nil, fileSizeMB: Int? = nil, tmpMB: Int? = nil) {
        self.cpuMs = cpuMs
        self.processes = processes
        self.openFiles = openFiles
        self.fileSizeMB = fileSizeMB
        self.tmpMB = tmpMB
    }

    public var isEmpty: Bool { self == ManifestLimits() }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case cpuMs = "cpu_ms"
        case processes
        case openFiles = "open_files"
        case fileSizeMB = "file_size_mb"
        case tmpMB = "tmp_mb"
    }

    static let ranges: [CodingKeys: ClosedRange<Int>] = [
        .cpuMs: 1...900_000, .processes: 1...4096, .openFiles: 16...65_536, .fileSizeMB: 1...10_240,
        .tmpMB: 1...10_240,
    ]

    private var values: [(CodingKeys, Int?)] {
        [(.cpuMs, cpuMs), (.processes, processes), (.openFiles, openFiles), (.fileSizeMB, fileSizeMB), (.tmpMB, tmpMB)]
    }

    /// The first broken rule, or `nil`.
    func firstProblem() -> String? {
        for case (let key, let value?) in values {
            let range = Self.ranges[key]!
            if !range.contains(value) {
                return "limits.\(key.rawValue) must be between \(range.lowerBound) and \(range.upperBound), got \(value)"
            }
        }
        return nil
    }

    /// Reads the `limits` object; unknown keys and non-integers are rejected with a sentence naming the key.
    init(json: JSONValue) throws(VergeError) {
        guard case .object(let object) = json else {
            throw VergeError(.invalidBundle, "\(Manifest.fileName): limits must be an object, got \(json.summary)")
        }
        let allowed = CodingKeys.allCases.map(\.rawValue)
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw VergeError(
                .invalidBundle,
                "\(Manifest.fileName): unknown key \(Quoted.single("limits." + unknown)) (allowed keys in limits: "
                    + "\(allowed.sorted().joined(separator: ", ")))")
        }
        func integer(_ key: CodingKeys) throws(VergeError) -> Int? {
            switch object[key.rawValue] {
            case nil: return nil
            case .integer(let number)?: return number
            case let value?:
                throw VergeError(
                    .invalidBundle, "\(Manifest.fileName): limits.\(key.rawValue) must be an integer, got \(value.summary)")
            }
        }
        self.init(
            cpuMs: try integer(.cpuMs), processes: try integer(.processes), openFiles: try integer(.openFiles),
            fileSizeMB: try integer(.fileSizeMB), tmpMB: try integer(.tmpMB))
    }
}
