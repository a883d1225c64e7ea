import Foundation

/// A real `verge dev` process on ports chosen by the kernel, with its own temporary data directory.
public final class LocalClusterProcess: @unchecked Sendable {
    public let gatewayURL: String
    public let apiURL: String
    /// Host name → its own URL.
    public let hostURLs: [String: String]
    public let dataDirectory: TemporaryDirectory
    /// This cluster's own `XDG_CONFIG_HOME`, where `verge dev` stores the CLI's credential.
    public var configHome: String { dataDirectory.path + "/config" }
    /// The environment every command against this cluster runs with.
    public var environment: [String: String] { ["XDG_CONFIG_HOME": configHome] }
    private let component: ComponentProcess
    private let stderrPath: String

    /// The `verge dev` process.
    public var process: Process { component.process }

    /// Starts the cluster and waits for its `ready` line.
    public static func start(idleTimeout: Double = 300, extraArguments: [String] = []) async throws -> LocalClusterProcess {
        let data = try TemporaryDirectory(prefix: "verge-cluster")
        let stderrPath = data.path + "/verge.stderr"
        let component = try await ComponentProcess.start(
            [
                "dev", "--gateway", "127.0.0.1:0", "--api", "127.0.0.1:0", "--data", data.path + "/data",
                "--idle-timeout", "\(idleTimeout)",
                // A slow or busy test machine may take seconds to start a worker; no test waits for this to pass.
                "--init-timeout", "60",
            ] + extraArguments,
            environment: ["XDG_CONFIG_HOME": data.path + "/config"],
            logPath: stderrPath
        )
        guard let gateway = component.ready["gateway"], let api = component.ready["api"],
            let hosts = component.ready["hosts"]
        else {
            await component.stop()
            throw TestFailure("verge dev's ready line lacks gateway, api or hosts: \(component.ready)")
        }
        var hostURLs: [String: String] = [:]
        for entry in hosts.split(separator: ",") {
            let pair = entry.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { hostURLs[String(pair[0])] = String(pair[1]) }
        }
        return LocalClusterProcess(
            gatewayURL: gateway, apiURL: api, hostURLs: hostURLs, dataDirectory: data, component: component,
            stderrPath: stderrPath
        )
    }

    private init(
        gatewayURL: String, apiURL: String, hostURLs: [String: String], dataDirectory: TemporaryDirectory,
        component: ComponentProcess, stderrPath: String
    ) {
        self.gatewayURL = gatewayURL
        self.apiURL = apiURL
        self.hostURLs = hostURLs
        self.dataDirectory = dataDirectory
        self.component = component
        self.stderrPath = stderrPath
    }

    /// The cluster's log so far (its stderr).
    public var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// `verge deploy DIR` against this cluster.
    public func deploy(_ directory: String) async throws -> CommandResult {
        let result = try await verge(["deploy", directory])
        if result.status != 0 {
            // Most tests only check the status: the reason goes to the test log.
            FileHandle.standardError.write(
                Data("---- verge deploy \(directory) failed (\(result.status)) ----\n\(result.stderr)\n".utf8))
        }
        return result
    }

    /// Runs a `verge` subcommand with `--api` pointed here, with the credential `verge dev` stored (unless
    /// `environment` says otherwise, e.g. `VERGE_TOKEN`).
    public func verge(
        _ arguments: [String], environment: [String: String] = [:], stdin: [UInt8]? = nil,
        timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        try await CommandRunner.verge(
            arguments + ["--api", apiURL], environment: self.environment.merging(environment) { _, new in new },
            stdin: stdin, timeout: timeout)
    }

    /// The admin token `verge dev` created on its first start (mode 0600 in its data directory).
    public func adminToken() throws -> String {
        let path = dataDirectory.path + "/data/control/admin-token"
        guard let data = FileManager.default.contents(atPath: path) else { throw TestFailure("no \(path)") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The host-side pids of `function`'s live workers on `host` (every host when `nil`), from `verge hosts`.
    /// Inside its sandbox a worker sees another pid (its own PID namespace); these are the host's.
    public func workerPIDs(function: String, host: String? = nil) async throws -> [Int32] {
        let result = try await verge(["hosts", "--format", "json"])
        let hosts = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
        var pids: [Int32] = []
        for entry in hosts where host == nil || entry["name"] as? String == host {
            for status in entry["functions"] as? [[String: Any]] ?? [] where status["name"] as? String == function {
                pids += (status["worker_pids"] as? [Int] ?? []).map { Int32($0) }
            }
        }
        return pids
    }

    /// Sends SIGTERM and waits for the process to exit (SIGKILL after `timeout`); returns its exit status.
    @discardableResult
    public func stop(timeout: Duration = .seconds(20)) async -> Int32 {
        await component.stop(timeout: timeout)
    }

    /// Runs `body` with a fresh cluster, stopping it and removing its data afterwards whatever happens.
    public static func with<T>(
        idleTimeout: Double = 300, extraArguments: [String] = [], _ body: (LocalClusterProcess) async throws -> T
    ) async throws -> T {
        let cluster = try await start(idleTimeout: idleTimeout, extraArguments: extraArguments)
        do {
            let result = try await body(cluster)
            await cluster.stop()
            cluster.dataDirectory.remove()
            return result
        } catch {
            await cluster.stop()
            FileHandle.standardError.write(Data("---- verge dev log ----\n\(cluster.log)\n".utf8))
            cluster.dataDirectory.remove()
            throw error
        }
    }
}

/// Polls `condition` until it holds or `timeout` passes.
public func eventually(
    timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(50), _ condition: () async throws -> Bool
) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}
