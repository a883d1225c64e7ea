import ArgumentParser
import AsyncHTTPClient
import Foundation
import VergeHTTP

/// `verge`: run a local cluster, deploy functions, read usage.
public struct VergeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "verge",
        abstract: "Verge: serverless functions at the edge, in isolated process pools.",
        subcommands: [
            DevCommand.self, DeployCommand.self, FunctionsCommand.self, VersionsCommand.self, RollbackCommand.self,
            DeleteCommand.self, LogsCommand.self, UsageCommand.self, HostsCommand.self, TenantsCommand.self,
            TokensCommand.self, JoinTokensCommand.self, SecretsCommand.self, ControlPlaneCommand.self,
            HostCommand.self, GatewayCommand.self, BenchIngestCommand.self,
        ]
    )

    public init() {}
}

/// Options shared by every command that talks to the control plane.
struct APIOptions: ParsableArguments {
    @Option(name: .long, help: "The control plane's URL (or set VERGE_API).")
    var api: String = ProcessInfo.processInfo.environment["VERGE_API"] ?? "http://127.0.0.1:8787"

    @Option(
        name: .long,
        help: "API token (or set VERGE_TOKEN). Default: the one stored for this URL in the user's credentials file.")
    var token: String? = ProcessInfo.processInfo.environment["VERGE_TOKEN"]

    @Option(
        name: .customLong("tls-ca"),
        help: "PEM CA certificates to trust for an https control plane (or set VERGE_TLS_CA).")
    var tlsCA: String? = ProcessInfo.processInfo.environment["VERGE_TLS_CA"]

    var client: APIClient {
        get throws {
            do {
                try HTTPClient.useVergeTrust(TLSSettings(caFile: tlsCA))
            } catch {
                throw VergeCLIError(error.message)
            }
            let url = CLICredentials.key(api)
            let given = token?.trimmingCharacters(in: .whitespacesAndNewlines)
            return APIClient(
                baseURL: url, token: given.flatMap { $0.isEmpty ? nil : $0 } ?? CLICredentials.standard.token(for: url))
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, jsonl, csv
}

extension VergeCommand {
    /// Parses the process's arguments and runs the chosen command, exiting with its status.
    public static func run() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
