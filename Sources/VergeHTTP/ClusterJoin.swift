import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import VergeCore

/// How a host or gateway gets its own credential: from its credential file when it has joined before, otherwise by
/// exchanging a one-time join token at the control plane (`POST /v1/join`) and writing the answer to the file
/// (mode 0600). With neither, it refuses to start.
public enum ClusterJoin {
    public static func credential(
        file: String, joinToken: String?, role: JoinRequest.Role, name: String, controlPlaneURL: String
    ) async throws -> String {
        if let existing = try SecretFile.read(file) {
            guard Credential(parsing: existing) != nil else {
                throw VergeError(.badRequest, "\(file) does not hold a Verge credential; remove it and join again")
            }
            return existing
        }
        guard let joinToken else {
            throw VergeError(
                .unauthorized,
                "the \(role.rawValue) has no credential (\(file)) and no join token: create one with `verge join-tokens create --role \(role.rawValue)` and pass it with --join-token-file or VERGE_JOIN_TOKEN"
            )
        }
        var request = HTTPClientRequest(url: controlPlaneURL + "/v1/join")
        request.method = .POST
        request.headers.add(name: "authorization", value: "Bearer " + joinToken)
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONCoding.encoder.encode(JoinRequest(role: role, name: name))))
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.verge.execute(request, timeout: .seconds(10))
        } catch {
            throw VergeError(
                .upstreamFailed, "cannot reach the control plane at \(controlPlaneURL) to join", underlying: error)
        }
        let body = try await response.body.collect(upTo: 64 * 1024)
        guard response.status == .created else {
            let message =
                (try? JSONCoding.decoder.decode(ErrorBody.self, from: Data(body.readableBytesView)))?.error.message
                ?? "status \(response.status.code)"
            throw VergeError(.unauthorized, "joining the cluster failed: \(message)")
        }
        let answer = try JSONCoding.decoder.decode(JoinResponse.self, from: Data(body.readableBytesView))
        try SecretFile.write(answer.credential, to: file)
        return answer.credential
    }

    /// A secret given by file or environment: the contents of `file` when set, else `environment[variable]`.
    public static func secret(file: String?, variable: String) throws -> String? {
        if let file {
            guard let text = try SecretFile.read(file) else {
                throw VergeError(.badRequest, "cannot read \(file)")
            }
            return text
        }
        return ProcessInfo.processInfo.environment[variable].flatMap { $0.isEmpty ? nil : $0 }
    }
}
