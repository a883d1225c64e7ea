import Foundation

/// One standalone `verge` component (`control-plane`, `host`, `gateway`) as a real process, for clusters whose parts
/// a test stops and kills one by one.
public final class ComponentProcess: @unchecked Sendable {
    public let process: Process
    /// The `key=value` pairs of the component's `ready` line, e.g. `["host": "http://127.0.0.1:4321"]`.
    public let ready: [String: String]
    private let lifeline: Pipe

    private init(process: Process, ready: [String: String], lifeline: Pipe) {
        self.process = process
        self.ready = ready
        self.lifeline = lifeline
    }

    /// Starts `verge ARGUMENTS --stop-on-stdin-eof` and waits for its `ready` line; stderr goes to `logPath`.
    /// `environment` is added as for ``CommandRunner/run(_:_:environment:timeout:)``.
    public static func start(
        _ arguments: [String], environment: [String: String] = [:], logPath: String
    ) async throws -> ComponentProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.vergeExecutable)
        process.arguments = arguments + ["--stop-on-stdin-eof"]
        process.environment = Paths.testEnvironment(environment)
        let stdout = Pipe().closingOnExec()
        let lifeline = Pipe().closingOnExec()
        process.standardOutput = stdout
        process.standardInput = lifeline
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)?.closingOnExec()
        try ProcessLaunch.run(process)
        let line = try await blocking { () throws -> String in
            var buffer = Data()
            while true {
                let chunk = stdout.fileHandleForReading.availableData
                if chunk.isEmpty { throw TestFailure("verge \(arguments.first ?? "") exited before it was ready") }
                buffer.append(chunk)
                if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    return String(decoding: buffer[..<newline], as: UTF8.self)
                }
            }
        }
        guard line.hasPrefix("ready ") else {
            process.terminate()
            throw TestFailure("unexpected first line: \(line)")
        }
        var fields: [String: String] = [:]
        for part in line.split(separator: " ").dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        return ComponentProcess(process: process, ready: fields, lifeline: lifeline)
    }

    /// Kills the process at once (no shutdown of any kind) and waits for it.
    public func kill() async {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        _ = try? await blocking { [process] in process.waitUntilExit() }
    }

    /// SIGTERM, then waits (SIGKILL after `timeout`); returns the exit status.
    @discardableResult
    public func stop(timeout: Duration = .seconds(20)) async -> Int32 {
        if process.isRunning { process.terminate() }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning, clock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        _ = try? await blocking { [process] in process.waitUntilExit() }
        return process.terminationStatus
    }
}
