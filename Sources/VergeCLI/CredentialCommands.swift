import ArgumentParser
import Foundation
import VergeControlPlane
import VergeCore

/// `verge tenants create NAME`, `verge tenants list`.
struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants", abstract: "Create and list tenants (needs an admin token).",
        subcommands: [Create.self, List.self], defaultSubcommand: List.self)

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant.")
        @Argument(help: "Tenant name (a-z, 0-9 and '-', starting with a letter).") var name: String
        @OptionGroup var api: APIOptions

        func run() async throws {
            try await reportingErrors {
                let body = try JSONEncoder().encode(CreateTenantRequest(name: name))
                let tenant = try await api.client.post(
                    "/v1/tenants", body: Array(body), contentType: "application/json", as: TenantSummary.self)
                Output.line("created tenant \(tenant.name)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")
        @OptionGroup var api: APIOptions
        @Option(help: "table or json") var format: OutputFormat = .table

        func run() async throws {
            try await reportingErrors {
                let tenants = try await api.client.get("/v1/tenants", as: [TenantSummary].self)
                if format == .table {
                    Output.table(["NAME", "CREATED"], tenants.map { [$0.name, TokensCommand.time($0.createdAtMs)] })
                } else {
                    try Output.json(tenants)
                }
            }
        }
    }
}

/// `verge tokens create|list|revoke`.
struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "Create, list and revoke API tokens (needs an admin token).",
        subcommands: [Create.self, List.self, Revoke.self], defaultSubcommand: List.self)

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an API token; it is printed once and stored only as a hash.",
            discussion: "Scopes: admin (everything, every tenant), deploy, usage:read, logs:read.")
        @Option(help: "The tenant the token acts for.") var tenant: String
        @Option(parsing: .upToNextOption, help: "One or more scopes: admin, deploy, usage:read, logs:read.")
        var scope: [String]
        @Option(name: .customLong("expires-in"), help: "Lifetime in seconds (default: no expiry).") var expiresIn:
            Int64?
        @Option(help: "A note to recognise the token by.") var description: String?
        @OptionGroup var api: APIOptions

        func run() async throws {
            try await reportingErrors {
                let request = CreateTokenRequest(
                    tenant: tenant, scopes: scope, expiresInS: expiresIn, description: description)
                let created = try await api.client.post(
                    "/v1/tokens", body: Array(try JSONEncoder().encode(request)), contentType: "application/json",
                    as: CreatedToken.self)
                Output.line(created.token)
                Output.error(
                    "token \(created.summary.id) for tenant \(created.summary.tenant) "
                        + "(\(created.summary.scopes.joined(separator: " "))); it is shown only this once")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List credentials (never their secrets).")
        @Option(help: "Only this tenant's.") var tenant: String?
        @OptionGroup var api: APIOptions
        @Option(help: "table or json") var format: OutputFormat = .table

        func run() async throws {
            try await reportingErrors {
                let path = "/v1/tokens" + (tenant.map { "?tenant=\($0)" } ?? "")
                let tokens = try await api.client.get(path, as: [TokenSummary].self)
                if format == .table {
                    Output.table(
                        ["ID", "KIND", "TENANT", "SCOPES", "SUBJECT", "EXPIRES", "STATE"],
                        tokens.map {
                            [
                                $0.id, $0.kind, $0.tenant, $0.scopes.joined(separator: " "), $0.subject ?? "",
                                $0.expiresAtMs.map(TokensCommand.time) ?? "never", $0.revoked ? "revoked" : "active",
                            ]
                        })
                } else {
                    try Output.json(tokens)
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a credential by id.")
        @Argument(help: "The credential's id (see `verge tokens list`).") var id: String
        @OptionGroup var api: APIOptions

        func run() async throws {
            try await reportingErrors {
                _ = try await api.client.delete("/v1/tokens/\(id)", as: [String: String].self)
                Output.line("revoked \(id)")
            }
        }
    }

    static func time(_ milliseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(.iso8601)
    }
}

/// `verge join-tokens create --role host|gateway`.
struct JoinTokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join-tokens",
        abstract: "Create one-time join tokens for hosts and gateways (needs an admin token).",
        subcommands: [Create.self], defaultSubcommand: Create.self)

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a join token; give it to `verge host` or `verge gateway` by file or VERGE_JOIN_TOKEN.")
        @Option(help: "host or gateway") var role: String
        @Option(name: .customLong("expires-in"), help: "Lifetime in seconds (default 3600).") var expiresIn: Int64?
        @OptionGroup var api: APIOptions

        func run() async throws {
            try await reportingErrors {
                guard let role = JoinRequest.Role(rawValue: role) else {
                    throw VergeCLIError("--role must be host or gateway")
                }
                let request = CreateJoinTokenRequest(role: role, expiresInS: expiresIn)
                let created = try await api.client.post(
                    "/v1/join-tokens", body: Array(try JSONEncoder().encode(request)),
                    contentType: "application/json", as: CreatedToken.self)
                Output.line(created.token)
            }
        }
    }
}
