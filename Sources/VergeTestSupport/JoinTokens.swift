import Foundation

/// Credentials for components started one by one, as an operator gives them: the admin token the control plane
/// wrote on its first start, and one-time join tokens handed over in 0600 files.
public enum JoinTokens {
    /// The admin token in a control plane's data directory.
    public static func adminToken(controlPlaneData: String) throws -> String {
        try String(contentsOfFile: controlPlaneData + "/admin-token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Creates a join token for `role` (`host` or `gateway`) with `verge join-tokens create` and writes it to
    /// `directory/NAME.join` (mode 0600); returns the file's path. `extraArguments` go to the CLI (e.g. `--tls-ca`).
    public static func file(
        role: String, name: String, api: String, adminToken: String, directory: String,
        extraArguments: [String] = []
    ) async throws -> String {
        let created = try await CommandRunner.verge(
            ["join-tokens", "create", "--role", role, "--api", api] + extraArguments,
            environment: ["VERGE_TOKEN": adminToken])
        guard created.status == 0 else { throw TestFailure("verge join-tokens create failed: \(created.stderr)") }
        let path = directory + "/\(name).join"
        FileManager.default.createFile(
            atPath: path, contents: Data(created.stdout.utf8), attributes: [.posixPermissions: 0o600])
        return path
    }
}

extension ComponentProcess {
    /// A control plane as its own process on 127.0.0.1 port 0, its data in `directory/cp` and its log in
    /// `directory/cp.log`: the process (the caller stops it), its API URL and the admin token it wrote on first start.
    public static func startControlPlane(
        in directory: String
    ) async throws -> (process: ComponentProcess, api: String, adminToken: String) {
        let process = try await start(
            ["control-plane", "--api", "127.0.0.1:0", "--data", directory + "/cp"], logPath: directory + "/cp.log")
        guard let api = process.ready["api"] else {
            await process.stop()
            throw TestFailure("the control plane's ready line names no api: \(process.ready)")
        }
        return (process, api, try JoinTokens.adminToken(controlPlaneData: directory + "/cp"))
    }
}
