import Foundation
import VergeCore

/// The contents of `verge.json`, the file at the root of every bundle that says how to run the function.
///
/// JSON keys are snake_case (`memory_mb`, `timeout_ms`, `max_workers`, `idle_timeout_s`, `min_instances`). Decoding — through
/// ``parse(_:)`` or any `Decoder` — applies the defaults, rejects unknown keys and checks every rule, so a decoded
/// `Manifest` is always valid. A `Manifest` built in code can be checked with ``validate()``.
public struct Manifest: Codable, Sendable, Equatable {
    /// The language a function is written in; it decides how the host starts its workers.
    public enum Runtime: String, Codable, Sendable, CaseIterable {
        case python
        case swift
    }

    /// What a function's workers may reach on the network (`network`).
    public enum Network: String, Codable, Sendable, CaseIterable {
        /// Nothing: a network namespace with only loopback (the default).
        case none
        /// Outbound connections to other machines, through a user-space network stack; never the host's own
        /// addresses (its loopback, the control plane, the gateway, other workers on it).
        case outbound
    }

    /// The name of the manifest file at the root of a bundle.
    public static let fileName = "verge.json"

    /// The function name: 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter (``FunctionName``).
    public var name: String
    public var runtime: Runtime
    /// For `python`, the relative path of the `.py` file inside the bundle that defines the handler (`main.py`).
    /// For `swift`, the name of the executable product, packed at `bin/<entry>`.
    public var entry: String
    /// For `python` only: the name of the function in `entry` that handles a request. Default `handle`.
    public var handler: String
    /// Memory limit of one worker in MiB (`memory_mb`, 16–10240, default 128).
    public var memoryMB: Int
    /// Deadline of one invocation in milliseconds (`timeout_ms`, 1–900000, default 10000).
    public var timeoutMs: Int
    /// Most workers a host runs at once for this function (`max_workers`, 1–256, default 4).
    public var maxWorkers: Int
    /// Seconds an idle worker is kept before it is stopped (`idle_timeout_s`, 1–86400); `nil` leaves it to the host.
    public var idleTimeoutSeconds: Int?
    /// Workers a host keeps running even when idle (`min_instances`, 0…`max_workers`, default 0: the function
    /// scales to zero and the first call after an idle period cold-starts).
    public var minInstances: Int
    /// Whether a host starts a worker as soon as the version is deployed (`prewarm`, default `false`), so even the
    /// first call is warm. With `min_instances` above 0 that many start on deploy anyway.
    public var prewarm: Bool
    /// Environment variables given to the function's workers: at most 64, names `[A-Z_][A-Z0-9_]*` up to 128
    /// characters and not starting with `VERGE_`, values up to 4096 bytes without NUL.
    public var env: [String: String]
    /// Further resource limits of each worker (`limits`); what is left out takes the host's defaults.
    public var limits: ManifestLimits
    /// Network access of each worker (`network`, `"none"` or `"outbound"`, default `"none"`).
    public var network: Network
    /// Regions the function may run in (`regions`, default: every region). A host is in region `R` when its name is
    /// `R` or starts with `R-` (`fra`, `fra-2`); the gateway routes the function's calls only to such hosts. At most
    /// 32 distinct host-name-shaped entries.
    public var regions: [String]
    /// Methods besides GET, HEAD and OPTIONS that this function handles idempotently (`idempotent_methods`, e.g.
    /// `["PUT", "DELETE"]`): the gateway may send such a call to another host when the first failed before
    /// answering. Default none.
    public var idempotentMethods: [String]

    public init(
        name: String,
        runtime: Runtime,
        entry: String,
        handler: String = Manifest.defaultHandler,
        memoryMB: Int = Manifest.defaultMemoryMB,
        timeoutMs: Int = Manifest.defaultTimeoutMs,
        maxWorkers: Int = Manifest.defaultMaxWorkers,
        idleTimeoutSeconds: Int? = nil,
        minInstances: Int = 0,
        prewarm: Bool = false,
        env: [String: String] = [:],
        limits: ManifestLimits = ManifestLimits(),
        network: Network = .none,
        regions: [String] = [],
        idempotentMethods: [String] = []
    ) {
        self.name = name
        self.runtime = runtime
        self.entry = entry
        self.handler = handler
        self.memoryMB = memoryMB
        self.timeoutMs = timeoutMs
        self.maxWorkers = maxWorkers
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.minInstances = minInstances
        self.prewarm = prewarm
        self.env = env
        self.limits = limits
        self.network = network
        self.regions = regions
        self.idempotentMethods = idempotentMethods
    }

    public static let defaultHandler = "handle"
    public static let defaultMemoryMB = 128
    public static let defaultTimeoutMs = 10_000
    public static let defaultMaxWorkers = 4

    /// Where the executable of a `swift` function lives inside its bundle; `nil` for other runtimes.
    public var executablePath: String? {
        runtime == .swift ? "bin/\(entry)" : nil
    }

    /// The bundle path of the file the runtime starts: the `.py` file for `python`, `bin/<entry>` for `swift`.
    public var entryPath: String {
        executablePath ?? entry
    }

    /// Parses and validates manifest JSON. Unknown keys, wrong types, out-of-range values and missing
    /// `name`/`runtime`/`entry` are rejected with a `VergeError(.invalidBundle, …)` naming the key and the rule.
    public static func parse(_ bytes: [UInt8]) throws(VergeError) -> Manifest {
        do {
            return try JSONDecoder().decode(Manifest.self, from: Data(bytes))
        } catch let error as VergeError {
            throw error
        } catch {
            throw VergeError(.invalidBundle, "\(fileName) is not valid JSON: \(jsonSyntaxProblem(bytes))")
        }
    }

    /// Canonical JSON: sorted keys, snake_case, no whitespace. `handler` is written for `python` only and
    /// `idle_timeout_s`, `min_instances`, `prewarm`, `limits`, `network`, `regions` and `idempotent_methods` only
    /// when set, so equal manifests always encode to equal bytes (and manifests written before those keys existed
    /// keep their bytes).
    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(self))
        } catch {
            // Strings, integers and a dictionary of strings always encode.
            preconditionFailure("encoding a manifest failed: \(error)")
        }
    }

    /// Why the bytes are not JSON, in the words of the JSON parser.
    private static func jsonSyntaxProblem(_ bytes: [UInt8]) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        } catch {
            if let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String {
                return detail
            }
        }
        return bytes.isEmpty ? "the file is empty" : "the text cannot be parsed"
    }
}

// MARK: - Codable

extension Manifest {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case name
        case runtime
        case entry
        case handler
        case memoryMB = "memory_mb"
        case timeoutMs = "timeout_ms"
        case maxWorkers = "max_workers"
        case idleTimeoutSeconds = "idle_timeout_s"
        case minInstances = "min_instances"
        case prewarm
        case env
        case limits
        case network
        case regions
        case idempotentMethods = "idempotent_methods"
    }

    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer().decode(JSONValue.self)
        self = try Manifest(json: value)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(runtime, forKey: .runtime)
        try container.encode(entry, forKey: .entry)
        if runtime == .python {
            try container.encode(handler, forKey: .handler)
        }
        try container.encode(memoryMB, forKey: .memoryMB)
        try container.encode(timeoutMs, forKey: .timeoutMs)
        try container.encode(maxWorkers, forKey: .maxWorkers)
        try container.encodeIfPresent(idleTimeoutSeconds, forKey: .idleTimeoutSeconds)
        if minInstances != 0 { try container.encode(minInstances, forKey: .minInstances) }
        if prewarm { try container.encode(prewarm, forKey: .prewarm) }
        try container.encode(env, forKey: .env)
        if !limits.isEmpty { try container.encode(limits, forKey: .limits) }
        if network != .none { try container.encode(network, forKey: .network) }
        if !regions.isEmpty { try container.encode(regions, forKey: .regions) }
        if !idempotentMethods.isEmpty { try container.encode(idempotentMethods, forKey: .idempotentMethods) }
    }
}
