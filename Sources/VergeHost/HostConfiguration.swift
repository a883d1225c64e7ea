import Foundation
import VergeCore
import VergeHTTP

/// Everything one edge host needs to know, with documented defaults. Loaded by `verge dev` from the cluster
/// config; every key is listed in the README's configuration table.
public struct HostConfiguration: Sendable {
    /// Short name shown in `x-verge-host` and `verge hosts`, e.g. `fra`.
    public var name: String
    /// Where the host is; the gateway routes clients to the nearest healthy host.
    public var location: GeoPoint
    /// The region the host belongs to (e.g. `eu-central`), written into every usage record. Default empty.
    public var region: String = ""
    /// Address the host's HTTP server binds. Default `127.0.0.1:0` (any free port).
    public var bind: BindAddress = BindAddress(host: "127.0.0.1", port: 0)
    /// The host's own directory: `host.sqlite` (usage and logs), `bundles/` (cached bundles), `deployments.json`.
    public var dataDirectory: String
    /// Directory holding the in-worker runtimes (`python/verge_worker.py`).
    public var runtimeDirectory: String
    /// The Python interpreter that runs Python functions. Default `/usr/bin/python3` when present.
    public var python: String = HostConfiguration.defaultPython
    /// How long an idle worker is kept before it is stopped (a function's manifest may override). Default 300 s.
    public var idleTimeout: Duration = .seconds(300)
    /// How long a worker may take from spawn to `ready`. Default 10 s.
    public var initTimeout: Duration = .seconds(10)
    /// How long a stopping worker gets between SIGTERM and SIGKILL. Default 2 s.
    public var stopGracePeriod: Duration = .seconds(2)
    /// Most worker processes the host runs at once, over every function (each function also has its own
    /// `max_workers`). Default: 16 per CPU core (`defaultMaxWorkers`).
    public var maxWorkers: Int = HostConfiguration.defaultMaxWorkers
    /// Most memory, in MiB, the host's workers may have together, counting each worker as its function's
    /// `memory_mb`. Default: three quarters of the machine's physical memory (`defaultMaxMemoryMB`).
    public var maxMemoryMB: Int = HostConfiguration.defaultMaxMemoryMB
    /// Most calls of one function that wait for a worker at once; a call beyond it is answered at once with 429
    /// (the function is at its `max_workers`) or 503 (the host is at capacity). Default 64.
    public var maxQueuedCalls: Int = 64
    /// Threads that carry the host's calls: each client connection, and each worker's socket, lives on one of them,
    /// and a call prefers a worker on its connection's thread, so it needs no hand-off between threads. The host
    /// shares the machine with its workers, which do the calls' real work: the default is one per four cores, at
    /// least one (`defaultEventLoops`).
    public var eventLoops: Int = HostConfiguration.defaultEventLoops
    /// Largest request body a function accepts. Default 6 MiB.
    public var maxRequestBodyBytes: Int = 6 * 1024 * 1024
    /// The control plane to sync with; `nil` runs the host from its cache only.
    public var controlPlaneURL: String?
    /// How often the host reports its status and pulls the desired state. Default 250 ms.
    public var syncInterval: Duration = .milliseconds(250)
    /// How long function logs, and usage records the control plane has acknowledged, stay on the host. Default 24 h.
    public var retention: Duration = .seconds(86_400)
    /// How often usage records are shipped to the control plane when there is nothing new to wake it. Default 1 s.
    public var shipInterval: Duration = .seconds(1)
    /// The host's own credential (`verge_host_…`), presented to the control plane on sync, bundle fetches and usage
    /// shipping. Default: read from `DATA/credential`, or obtained with ``joinToken`` on first start and written
    /// there (mode 0600). A host with a control plane and none of the three refuses to start.
    public var credential: String?
    /// A one-time join token (`verge join-tokens create --role host`), used when the host has no credential yet.
    public var joinToken: String?
    /// The URL the gateway and the control plane reach this host at. Default: the address it listens on, which
    /// must then not be an unspecified address (`0.0.0.0`, `::`).
    public var advertiseURL: String?
    /// How workers are isolated, and the limits they get when their manifest sets none.
    public var isolationSettings = IsolationSettings()
    /// The HTTP listener's connection cap and idle timeout.
    public var listener: ListenerLimits = .default
    /// TLS for the listener (certificate and key) and the CA trusted when calling the control plane.
    public var tls = TLSSettings()

    public init(name: String, location: GeoPoint, dataDirectory: String, runtimeDirectory: String) {
        self.name = name
        self.location = location
        self.dataDirectory = dataDirectory
        self.runtimeDirectory = runtimeDirectory
    }

    /// 16 workers per CPU core: a worker is a process that mostly waits for I/O, but every one costs memory and
    /// scheduling; the memory capacity usually binds first.
    public static let defaultMaxWorkers: Int = 16 * max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Three quarters of physical memory, leaving the rest to the host itself, the page cache and the system.
    public static let defaultMaxMemoryMB: Int =
        max(256, Int(ProcessInfo.processInfo.physicalMemory / 1_048_576) * 3 / 4)

    public static let defaultEventLoops: Int = max(1, ProcessInfo.processInfo.activeProcessorCount / 4)

    /// Checks the capacity settings; the error names the setting and its allowed range.
    public func validateCapacity() throws(VergeError) {
        if !(1...100_000).contains(maxWorkers) {
            throw VergeError(.badRequest, "max_workers must be between 1 and 100000, got \(maxWorkers)")
        }
        if !(16...16_777_216).contains(maxMemoryMB) {
            throw VergeError(.badRequest, "max_memory_mb must be between 16 and 16777216, got \(maxMemoryMB)")
        }
        if !(0...100_000).contains(maxQueuedCalls) {
            throw VergeError(.badRequest, "max_queued_calls must be between 0 and 100000, got \(maxQueuedCalls)")
        }
        if !(1...256).contains(eventLoops) {
            throw VergeError(.badRequest, "host_event_loops must be between 1 and 256, got \(eventLoops)")
        }
    }

    public static let defaultPython: String =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
}
