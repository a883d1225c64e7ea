import ArgumentParser
import Foundation
import VergeControlPlane
import VergeCore
import VergeUsage

/// Runs a CLI body, turning API and validation failures into `error: …` and exit status 1.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as VergeCLIError {
        Output.error("error: \(error)")
        throw ExitCode.failure
    }
}

struct FunctionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "functions", abstract: "List deployed functions.")
    @OptionGroup var api: APIOptions
    @Option(help: "table or json") var format: OutputFormat = .table

    func run() async throws {
        try await reportingErrors {
            let functions = try await api.client.get("/v1/functions", as: [FunctionSummary].self)
            if format == .table {
                Output.table(
                    ["NAME", "LIVE", "VERSIONS", "SHA256"],
                    functions.map {
                        [$0.name, "v\($0.liveNumber)", "\($0.versionCount)", String($0.liveVersion.prefix(12))]
                    })
            } else {
                try Output.json(functions)
            }
        }
    }
}

struct VersionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "versions", abstract: "List a function's versions.")
    @Argument(help: "Function name.") var name: String
    @OptionGroup var api: APIOptions
    @Option(help: "table or json") var format: OutputFormat = .table

    func run() async throws {
        try await reportingErrors {
            let versions = try await api.client.get("/v1/functions/\(name)/versions", as: [VersionSummary].self)
            if format == .table {
                Output.table(
                    ["VERSION", "LIVE", "SIZE", "CREATED", "SHA256"],
                    versions.map {
                        [
                            "v\($0.number)", $0.live ? "*" : "", DeployCommand.size($0.sizeBytes),
                            Date(timeIntervalSince1970: Double($0.createdAtMs) / 1000).formatted(.iso8601), $0.version,
                        ]
                    })
            } else {
                try Output.json(versions)
            }
        }
    }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Make the previous (or a given) version live again."
    )
    @Argument(help: "Function name.") var name: String
    @Option(
        name: .customLong("to"), help: "Version number (e.g. 2) or hash prefix. Default: the one before the live one.")
    var version: String?
    @OptionGroup var api: APIOptions

    func run() async throws {
        try await reportingErrors {
            let body = try JSONEncoder().encode(["version": version])
            let summary = try await api.client.post(
                "/v1/functions/\(name)/rollback", body: Array(body), contentType: "application/json",
                as: FunctionSummary.self
            )
            Output.line("\(summary.name) is now at version \(summary.liveNumber) (\(summary.liveVersion.prefix(12))).")
        }
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Stop serving a function everywhere.")
    @Argument(help: "Function name.") var name: String
    @OptionGroup var api: APIOptions

    func run() async throws {
        try await reportingErrors {
            _ = try await api.client.delete("/v1/functions/\(name)", as: [String: String].self)
            Output.line("Deleted \(name); hosts stop serving it at their next sync.")
        }
    }
}

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Show a function's logs (its workers' stdout and stderr) from every host."
    )
    @Argument(help: "Function name.") var name: String
    @Option(help: "Only lines of this invocation id.") var invocation: String?
    @Option(help: "At most this many of the newest lines.") var limit: Int = 100
    @OptionGroup var api: APIOptions
    @Option(help: "table or jsonl") var format: OutputFormat = .table

    func run() async throws {
        try await reportingErrors {
            var path = "/v1/functions/\(name)/logs?limit=\(limit)"
            if let invocation { path += "&invocation=\(invocation)" }
            let lines = try await api.client.get(path, as: [LogLine].self)
            for line in lines {
                if format == .jsonl {
                    try Output.json(line, pretty: false)
                } else {
                    let time = Date(timeIntervalSince1970: Double(line.timeUs) / 1_000_000).formatted(.iso8601)
                    Output.line("\(time) \(line.invocationID ?? "-") \(line.stream) \(line.line)")
                }
            }
        }
    }
}

struct HostsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hosts", abstract: "List the edge hosts: location, health and warm workers per function."
    )
    @OptionGroup var api: APIOptions
    @Option(help: "table or json") var format: OutputFormat = .table

    func run() async throws {
        try await reportingErrors {
            let hosts = try await api.client.get("/v1/hosts", as: [HostSummary].self)
            if format == .table {
                Output.table(
                    ["HOST", "LOCATION", "HEALTH", "ISOLATION", "WARM", "FUNCTIONS (warm workers)", "URL"],
                    hosts.map { host in
                        [
                            host.name, String(format: "%.2f,%.2f", host.location.latitude, host.location.longitude),
                            host.healthy ? "healthy" : "unreachable (\(host.lastSeenMs / 1000) s)",
                            host.isolation.map { $0 == .none ? "NONE (unsandboxed)" : $0.rawValue } ?? "unknown",
                            "\(host.warmWorkers)",
                            host.functions.map { "\($0.name)=\($0.warmWorkers)" }.joined(separator: " "), host.url,
                        ]
                    })
            } else {
                try Output.json(hosts)
            }
        }
    }
}
