import Foundation

/// A cluster of separate `verge` processes — a control plane, named hosts at given locations, one gateway — as on
/// several machines, so a test can kill one host with SIGKILL while the others serve.
public final class SeparateClusterProcess: @unchecked Sendable {
    public let scratch: TemporaryDirectory
    public let apiURL: String
    public let gatewayURL: String
    /// Host name → its process (its URL is `ready["host"]`).
    public let hosts: [String: ComponentProcess]
    public let gateway: ComponentProcess
    public let controlPlane: ComponentProcess
    /// The admin token, as `VERGE_TOKEN` for CLI calls.
    public let admin: [String: String]

    private init(
        scratch: TemporaryDirectory, apiURL: String, gatewayURL: String, hosts: [String: ComponentProcess],
        gateway: ComponentProcess, controlPlane: ComponentProcess, admin: [String: String]
    ) {
        self.scratch = scratch
        self.apiURL = apiURL
        self.gatewayURL = gatewayURL
        self.hosts = hosts
        self.gateway = gateway
        self.controlPlane = controlPlane
        self.admin = admin
    }

    /// A host to start: its name, `LATITUDE,LONGITUDE`, and extra `verge host` arguments.
    public struct Host: Sendable {
        public var name: String
        public var location: String
        public var arguments: [String]

        public init(_ name: String, _ location: String, arguments: [String] = []) {
            self.name = name
            self.location = location
            self.arguments = arguments
        }
    }

    /// Every component's log, for a failure message.
    public var logs: String {
        let names = ["cp", "gateway"] + hosts.keys.sorted()
        return names.map { name in
            "---- \(name) ----\n"
                + ((try? String(contentsOfFile: scratch.path + "/\(name).log", encoding: .utf8)) ?? "")
        }.joined(separator: "\n")
    }

    /// `verge deploy DIR` against this cluster, as its admin.
    public func deploy(_ directory: String) async throws -> CommandResult {
        try await CommandRunner.verge(["deploy", directory, "--api", apiURL], environment: admin)
    }

    /// Starts the components, runs `body`, and stops them all whatever happens.
    public static func with<T>(
        hosts: [Host], gatewayArguments: [String] = ["--trusted-proxy", "127.0.0.0/8"],
        _ body: (SeparateClusterProcess) async throws -> T
    ) async throws -> T {
        let scratch = try TemporaryDirectory(prefix: "verge-separate")
        var components: [ComponentProcess] = []
        func stopAll() async {
            for component in components.reversed() { await component.stop() }
        }
        let cluster: SeparateClusterProcess
        do {
            let controlPlane = try await ComponentProcess.start(
                ["control-plane", "--api", "127.0.0.1:0", "--data", scratch.path + "/cp"],
                logPath: scratch.path + "/cp.log")
            components.append(controlPlane)
            guard let api = controlPlane.ready["api"] else { throw TestFailure("the control plane named no api") }
            let token = try String(contentsOfFile: scratch.path + "/cp/admin-token", encoding: .utf8)
            let admin = ["VERGE_TOKEN": token.trimmingCharacters(in: .whitespacesAndNewlines)]
            func joinTokenFile(_ role: String, _ name: String) async throws -> String {
                let created = try await CommandRunner.verge(
                    ["join-tokens", "create", "--role", role, "--api", api], environment: admin)
                guard created.status == 0 else { throw TestFailure("join-tokens create: \(created.stderr)") }
                let path = scratch.path + "/\(name).join"
                FileManager.default.createFile(
                    atPath: path, contents: Data(created.stdout.utf8), attributes: [.posixPermissions: 0o600])
                return path
            }
            var started: [String: ComponentProcess] = [:]
            for host in hosts {
                let process = try await ComponentProcess.start(
                    [
                        "host", "--name", host.name, "--location", host.location, "--control-plane", api, "--data",
                        scratch.path + "/" + host.name, "--join-token-file", try await joinTokenFile("host", host.name),
                    ] + host.arguments,
                    logPath: scratch.path + "/\(host.name).log")
                started[host.name] = process
                components.append(process)
            }
            let gateway = try await ComponentProcess.start(
                [
                    "gateway", "--bind", "127.0.0.1:0", "--control-plane", api, "--credential-file",
                    scratch.path + "/gateway/credential", "--join-token-file",
                    try await joinTokenFile("gateway", "gateway"),
                ] + gatewayArguments,
                logPath: scratch.path + "/gateway.log")
            components.append(gateway)
            guard let gatewayURL = gateway.ready["gateway"] else { throw TestFailure("the gateway named no URL") }
            cluster = SeparateClusterProcess(
                scratch: scratch, apiURL: api, gatewayURL: gatewayURL, hosts: started, gateway: gateway,
                controlPlane: controlPlane, admin: admin)
        } catch {
            await stopAll()
            scratch.remove()
            throw error
        }
        do {
            let result = try await body(cluster)
            await stopAll()
            scratch.remove()
            return result
        } catch {
            await stopAll()
            FileHandle.standardError.write(Data(cluster.logs.utf8))
            scratch.remove()
            throw error
        }
    }
}
