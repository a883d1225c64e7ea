import Foundation

/// A real `verge dev` process on ports chosen by the kernel, with its own temporary data directory.
public final class LocalClusterProcess: @unchecked Sendable {
    public let gatewayURL: String
    public let apiURL: String
    /// Host name → its own URL.
    public let hostURLs: [String: String]
    public let dataDirectory: TemporaryDirectory
    public let process: Process
    private let stderrPath: String
    private let lifeline: Pipe

    /// Starts the cluster and waits for its `ready` line.
    public static func start(
        idleTimeout: Double = 300, extraArguments: [String] = []
    ) async throws -> LocalClusterProcess {
        let data = try TemporaryDirectory(prefix: "verge-cluster")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.vergeExecutable)
        process.arguments =
            [
                "dev", "--gateway", "127.0.0.1:0", "--api", "127.0.0.1:0", "--data", data.path + "/data",
                "--idle-timeout", "\(idleTimeout)", "--stop-on-stdin-eof",
            ] + extraArguments
        let stdout = Pipe()
        process.standardOutput = stdout
        let stderrPath = data.path + "/verge.stderr"
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        // The cluster stops when this pipe closes, so it never outlives the test process.
        let lifeline = Pipe()
        process.standardInput = lifeline
        try process.run()

        let line = try await blocking { () throws -> String in
            var buffer = Data()
            let handle = stdout.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { throw TestFailure("verge dev exited before it was ready") }
                buffer.append(chunk)
                if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    return String(decoding: buffer[..<newline], as: UTF8.self)
                }
            }
        }
        var fields: [String: String] = [:]
        for part in line.split(separator: " ").dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard line.hasPrefix("ready "), let gateway = fields["gateway"], let api = fields["api"],
            let hosts = fields["hosts"]
        else {
            process.terminate()
            throw TestFailure("unexpected first line from verge dev: \(line)")
        }
        var hostURLs: [String: String] = [:]
        for entry in hosts.split(separator: ",") {
            let pair = entry.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { hostURLs[String(pair[0])] = String(pair[1]) }
        }
        return LocalClusterProcess(
            gatewayURL: gateway, apiURL: api, hostURLs: hostURLs, dataDirectory: data, process: process,
            stderrPath: stderrPath, lifeline: lifeline
        )
    }

    private init(
        gatewayURL: String, apiURL: String, hostURLs: [String: String], dataDirectory: TemporaryDirectory,
        process: Process, stderrPath: String, lifeline: Pipe
    ) {
        self.lifeline = lifeline
        self.gatewayURL = gatewayURL
        self.apiURL = apiURL
        self.hostURLs = hostURLs
        self.dataDirectory = dataDirectory
        self.process = process
        self.stderrPath = stderrPath
    }

    /// The cluster's log so far (its stderr).
    public var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// `verge deploy DIR` against this cluster.
    public func deploy(_ directory: String) async throws -> CommandResult {
        try await CommandRunner.verge(["deploy", directory, "--api", apiURL])
    }

    /// Runs a `verge` subcommand with `--api` pointed here.
    public func verge(_ arguments: [String]) async throws -> CommandResult {
        try await CommandRunner.verge(arguments + ["--api", apiURL])
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    @discardableResult
    public func stop(timeout: Duration = .seconds(20)) async -> Int32 {
        if process.isRunning { process.terminate() }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning, clock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Runs `body` with a fresh cluster, stopping it and removing its data afterwards whatever happens.
    public static func with<T>(
        idleTimeout: Double = 300, _ body: (LocalClusterProcess) async throws -> T
    ) async throws -> T {
        let cluster = try await start(idleTimeout: idleTimeout)
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
