import ArgumentParser
import Foundation
import VergeControlPlane
import VergeCore

/// `verge secrets set|list|delete`: a function's secrets, given to its workers as environment variables.
struct SecretsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets",
        abstract: "Set, list and delete a function's secrets (environment variables sealed at rest).",
        subcommands: [SetSecret.self, ListSecrets.self, DeleteSecret.self]
    )

    struct SetSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Set a secret; the value is read from standard input (one trailing newline is removed).",
            discussion: "Example: printf %s \"$TOKEN\" | verge secrets set my-fn API_TOKEN"
        )
        @Argument(help: "Function name.") var function: String
        @Argument(help: "Variable name (A-Z, 0-9, '_'; not VERGE_*).") var name: String
        @OptionGroup var api: APIOptions

        func run() async throws {
            try await reportingErrors {
                var value = Array(FileHandle.standardInput.readDataToEndOfFile())
                if value.last == UInt8(ascii: "\n") { value.removeLast() }
                if value.last == UInt8(ascii: "\r") { value.removeLast() }
                guard !value.isEmpty else {
                    throw VergeCLIError(
                        "no value on standard input; pipe it in, e.g. "
                            + "printf %s \"$VALUE\" | verge secrets set \(function) \(name)"
                    )
                }
                let summary = try await api.client.put(
                    "/v1/functions/\(function)/secrets/\(name)", body: value, contentType: "application/octet-stream",
                    as: SecretSummary.self)
                Output.line("Secret \(summary.name) of \(function) is set; hosts give it to new workers within a sync.")
            }
        }
    }

    struct ListSecrets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List a function's secret names (never their values).")
        @Argument(help: "Function name.") var function: String
        @OptionGroup var api: APIOptions
        @Option(help: "table or json") var format: OutputFormat = .table

        func run() async throws {
            try await reportingErrors {
                let secrets = try await api.client.get("/v1/functions/\(function)/secrets", as: [SecretSummary].self)
                if format == .table {
                    Output.table(
                        ["NAME", "UPDATED"],
                        secrets.map {
                            [$0.name, Date(timeIntervalSince1970: Double($0.updatedAtMs) / 1000).formatted(.iso8601)]
                        })
                } else {
                    try Output.json(secrets)
                }
            }
        }
    }

    struct DeleteSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a secret.")
        @Argument(help: "Function name.") var function: String
        @Argument(help: "Variable name.") var name: String
        @OptionGroup var api: APIOptions

        func run() async throws {
            try await reportingErrors {
                _ = try await api.client.delete(
                    "/v1/functions/\(function)/secrets/\(name)", as: [String: String].self)
                Output.line(
                    "Secret \(name) of \(function) is deleted; hosts restart its workers without it within a sync.")
            }
        }
    }
}
