import Foundation

/// The result of running a command to completion.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum CommandRunner {
    /// Runs `executable` with `arguments`, waiting at most `timeout`; the process is killed if it overruns.
    /// `environment` is added to the test process's own; `XDG_CONFIG_HOME` always points into a temporary
    /// directory (``Paths/testConfigHome`` unless given), so no test reads or writes the real user's config.
    /// `stdin` is written to the process's standard input, which is then closed (without it: /dev/null).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: [UInt8]? = nil,
        timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = Paths.testEnvironment(environment)
        let out = Pipe().closingOnExec()
        let err = Pipe().closingOnExec()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe().closingOnExec()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try ProcessLaunch.run(process)
        if let stdin {
            try await blocking {
                input.fileHandleForWriting.write(Data(stdin))
                try input.fileHandleForWriting.close()
            }
        }
        async let stdout = blocking { out.fileHandleForReading.readDataToEndOfFile() }
        async let stderr = blocking { err.fileHandleForReading.readDataToEndOfFile() }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning {
            if clock.now > deadline {
                process.terminate()
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.waitUntilExit()
        return CommandResult(
            status: process.terminationStatus, stdout: String(decoding: try await stdout, as: UTF8.self),
            stderr: String(decoding: try await stderr, as: UTF8.self)
        )
    }

    /// Runs the `verge` CLI.
    public static func verge(
        _ arguments: [String], environment: [String: String] = [:], stdin: [UInt8]? = nil,
        timeout: Duration = .seconds(120)
    ) async throws -> CommandResult {
        try await run(Paths.vergeExecutable, arguments, environment: environment, stdin: stdin, timeout: timeout)
    }
}
